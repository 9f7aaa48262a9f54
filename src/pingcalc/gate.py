"""Admission without HTTP: may this client, presenting these credentials, use this scope now?

    client = Client.of("2001:db8::7")              # per-address limits count its /64
    refusal = gate.screen(client, presented)       # the penalty box, for every request
    decision = await gate.admit(client, presented, "calculate")
    if isinstance(decision, Refusal): ...          # status, reason, Retry-After, audit fields

`admit` runs its checks in this order, each cheaper than the next, and none refuses a
legitimate client for somebody else's behaviour:

1. address: the per-address rate counts every attempt (an address over it goes into the
   penalty box and is refused at the edge until its window frees);
2. token: authentication is a hash lookup;
3. on a failed token only, the failure count and its limit: guessing is throttled, but a
   valid token from the same address (a NAT, an ingress) is never refused for others'
   failures (NIST AC-7);
4. scope;
5. audit availability, for audited scopes under a fail-closed policy;
6. the token's own rate (a token over it also goes into the penalty box).

The HTTP layer (`pingcalc.api`) turns a `Refusal` into a problem response and records its
audit event; nothing here knows HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from pingcalc.audit import Auditor
from pingcalc.auth import TokenRecord, TokenStore, hash_token
from pingcalc.settings import Scope
from pingcalc.throttle import Limit, PenaltyBox, Rate, RateLimiter
from pingcalc.throttle.penalty import token_key

# Scopes whose every use is audited, and the event that records a refusal for each. Under a
# fail-closed policy these are refused while the audit trail cannot be written: an action
# that cannot be recorded is not performed (repudiation).
AUDITED_SCOPES: dict[str, str] = {"ping": "ping_rejected", "calculate": "calculation_rejected"}
# Seconds a client is told to wait while the audit trail is down.
AUDIT_RETRY_AFTER = 5
# IPv6 prefix length that per-address limits count as one client: a single host is handed a
# whole /64 (RFC 6177), so counting addresses would let it rotate through 2**64 of them.
IPV6_CLIENT_PREFIX = 64
# Most IPv6 client keys remembered (parsing an address costs microseconds; a bound keeps a
# flood of distinct addresses from growing the cache).
_KEY_CACHE_MAX = 4096
_key_cache: dict[str, str] = {}

BEARER_CHALLENGE = 'Bearer realm="pingcalc"'


def client_key(address: str) -> str:
    """What per-address limits count: an IPv4 address itself, an IPv6 address's /64.

    An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) counts as its IPv4 address.
    """
    if ":" not in address:
        return address
    key = _key_cache.get(address)
    if key is None:
        ip = IPv6Address(address.partition("%")[0])
        mapped = ip.ipv4_mapped
        if mapped is not None:
            key = str(mapped)
        else:
            key = str(IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()
        _key_cache[address] = key
    return key


@dataclass(frozen=True, slots=True)
class Client:
    """Who sent a request: its address (after trusted proxies) and its limit key."""

    address: str
    key: str

    @classmethod
    def of(cls, address: str) -> Client:
        return cls(address, client_key(address))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not admitted, with what the HTTP layer needs to answer and record it.

    `event` is the audit event to record (None: not audited, e.g. penalty-box refusals,
    which would otherwise let a flood write one record per request); `audit` holds the
    record's fields besides the request's own context.
    """

    status: int
    kind: str
    detail: str
    reason: str
    retry_after: int = 0
    title: str | None = None
    challenge: str | None = None
    event: str | None = None
    audit: dict[str, Any] = field(default_factory=dict)


def _rate_limited(detail: str, reason: str, retry_after: int, event: str | None) -> Refusal:
    return Refusal(
        429,
        "rate-limited",
        detail,
        reason,
        retry_after=retry_after,
        event=event,
        audit={"retry_after": retry_after} if event else {},
    )


ADDRESS_LIMITED = "too many requests from this address; retry later"
TOKEN_LIMITED = "this token is over its rate limit; retry later"  # noqa: S105  # nosec B105


class Gate:
    """The admission checks over the token store, the limiter, the penalty box and the audit."""

    def __init__(
        self,
        *,
        tokens: TokenStore,
        limiter: RateLimiter,
        box: PenaltyBox,
        audit: Auditor,
        per_ip: str,
        auth_failures: str,
        per_token: str,
    ) -> None:
        # The rates first: a malformed one fails here, at start-up.
        self.per_ip = Limit("ip", Rate.parse(per_ip))
        self.auth_failures = Limit("authfail", Rate.parse(auth_failures))
        self.per_token = Limit("token", Rate.parse(per_token))
        self.tokens = tokens
        self.limiter = limiter
        self.box = box
        self.audit = audit

    def screen(self, client: Client, presented: str | None) -> Refusal | None:
        """The penalty box: an address or token over its limit is refused until it frees.

        Costs one dictionary lookup while the box is empty (nearly always), and a hash of
        the presented token otherwise. Not audited: the refusal that boxed it was.
        """
        box = self.box
        if not box:
            return None
        wait = box.retry_after(client.key)
        if wait:
            return _rate_limited(ADDRESS_LIMITED, "ip_rate_limit", wait, None)
        if presented:
            wait = box.retry_after(token_key(hash_token(presented)))
            if wait:
                return _rate_limited(TOKEN_LIMITED, "token_rate_limit", wait, None)
        return None

    async def admit(
        self, client: Client, presented: str | None, scope: Scope
    ) -> TokenRecord | Refusal:
        """The token's record if `client` may use `scope` now, else why not (see module doc)."""
        limiter = self.limiter
        decision = await limiter.hit(self.per_ip, client.key)
        if not decision.allowed:
            self.box.add(client.key, decision.retry_after)
            return _rate_limited(
                ADDRESS_LIMITED, "ip_rate_limit", decision.retry_after, "rate_limited"
            )
        record = self.tokens.authenticate(presented) if presented else None
        if record is None:
            return await self._failed(client, presented)
        if scope not in record.scopes:
            return Refusal(
                403,
                "forbidden",
                f"token {record.name!r} lacks the {scope!r} scope",
                "missing_scope",
                challenge=f'{BEARER_CHALLENGE}, error="insufficient_scope", scope="{scope}"',
                event="authz_denied",
                audit={"token": record.name, "scope": scope},
            )
        audit = self.audit
        if scope in AUDITED_SCOPES and not audit.available and not audit.probe():
            return Refusal(
                503,
                "audit-unavailable",
                "the audit trail cannot be written, so audited actions are refused until it "
                "can; retry later (the operator sees the cause in the server log)",
                "audit_unavailable",
                retry_after=AUDIT_RETRY_AFTER,
                title="Audit trail unavailable",
                event=AUDITED_SCOPES[scope],
                audit={"token": record.name, "outcome": "rejected"},
            )
        decision = await limiter.hit(self.per_token, record.name)
        if not decision.allowed:
            self.box.add(token_key(record.sha256), decision.retry_after)
            return Refusal(
                429,
                "rate-limited",
                f"token {record.name!r} is over its rate limit ({self.per_token.rate})",
                "token_rate_limit",
                retry_after=decision.retry_after,
                event="rate_limited",
                audit={"token": record.name, "retry_after": decision.retry_after},
            )
        return record

    async def spend(self, record: TokenRecord, count: int) -> tuple[int, int]:
        """Count `count` more actions of an admitted token against its rate (a batch's
        expressions after the first, which `admit` counted): `(granted, retry_after)`.

        The first `granted` may proceed; at the first one over the budget the token goes
        into the penalty box, as at admission, and `retry_after` says when to retry (0 when
        all were granted). A batch therefore buys no more work than single requests would.
        """
        limiter, limit = self.limiter, self.per_token
        for granted in range(count):
            decision = await limiter.hit(limit, record.name)
            if not decision.allowed:
                self.box.add(token_key(record.sha256), decision.retry_after)
                return granted, decision.retry_after
        return count, 0

    async def _failed(self, client: Client, presented: str | None) -> Refusal:
        """A missing or invalid token: count the failure; past the limit, refuse for longer."""
        decision = await self.limiter.hit(self.auth_failures, client.key)
        if not decision.allowed:
            return _rate_limited(
                "too many failed authentications from this address; retry later",
                "auth_failure_limit",
                decision.retry_after,
                "rate_limited",
            )
        if presented is None:
            return Refusal(
                401,
                "unauthorized",
                "a valid bearer token is required: send 'Authorization: Bearer <token>'",
                "missing_token",
                challenge=BEARER_CHALLENGE,
                event="auth_failure",
            )
        return Refusal(
            401,
            "unauthorized",
            "the bearer token is not valid (unknown, revoked or malformed)",
            "invalid_token",
            challenge=f'{BEARER_CHALLENGE}, error="invalid_token"',
            event="auth_failure",
        )
