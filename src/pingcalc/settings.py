"""One typed settings object, read once at start-up and passed down.

Sources, highest precedence first: keyword arguments, environment (`PINGCALC_*`), the env file
named by `PINGCALC_ENV_FILE` (never `.env` of the working directory: see envfile.py), secret
files (`/run/secrets/pingcalc_*`, the Docker and Kubernetes convention), defaults.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from pingcalc.calc.bounds import DEFAULT_BOUNDS, RANGES
from pingcalc.envfile import ENV_FILE_VARIABLE, env_file_settings
from pingcalc.errors import PingcalcError

SECRETS_DIR = Path("/run/secrets")
# Rate-limit storages shared through Redis: TCP, TCP with TLS, a Unix socket.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

Scope = Literal["ping", "calculate", "metrics"]
SCOPES: tuple[Scope, ...] = ("ping", "calculate", "metrics")

# Host-name lookups. A silent or slow name server cannot hold a request longer than this
# (resolver DoS, T1499); getaddrinfo's own retries can take 10 s or more.
PING_RESOLVE_TIMEOUT_SECONDS = 2.0
# Lookups in flight per process; past it a name is refused at once, never queued, so a flood
# of slow names cannot pile up lookup threads or amplify through the resolver (T1499, T1498).
PING_MAX_LOOKUPS = 16


def _calc_bound(name: str) -> Any:
    """The field of calculator bound `name`: its default and its range, from the calculator."""
    low, high = RANGES[name]
    return Field(default=getattr(DEFAULT_BOUNDS, name), ge=low, le=high)


# Echo requests one ping may send, at most: an operator may lower it, never raise it, so one
# admitted request stays a handful of packets to its target (T1498: the service as a flooder).
MAX_ECHOES = 5


class SettingsError(PingcalcError):
    """Invalid configuration; the message is one line naming the setting."""


class Settings(BaseSettings):
    """Every knob of pingcalc; each security-relevant default is the safe one."""

    model_config = SettingsConfigDict(
        env_prefix="PINGCALC_",
        # No implicit `.env`: a writable working directory must not configure the service.
        env_file=None,
        extra="ignore",
        frozen=True,
    )

    # --- network -----------------------------------------------------------------------
    # Loopback by default: exposing the service is an explicit choice (threat: port on 0.0.0.0).
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # Seconds in-flight requests get to finish after SIGTERM before the server exits.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=300)
    # Trust X-Forwarded-For only from these proxies: addresses or CIDR networks, comma
    # separated (empty: never), so clients cannot spoof the address that per-IP limits, the
    # penalty box and the audit trail use. `*` trusts every peer (`pingcalc check` fails it).
    forwarded_allow_ips: str = ""
    # Peers that may connect at all: addresses or CIDR networks, comma separated (empty:
    # anyone). Behind a proxy, the proxy's address (and 127.0.0.1 for health checks), so no
    # one reaches the server around the proxy's TLS, timeouts and caps (the stack's replicas
    # are reachable from the Docker host by their container addresses).
    connect_allow_ips: str = ""

    # --- connections (the guarded HTTP protocol, server.py) ----------------------------
    # Bytes of one request's head (request line and headers). Stops memory exhaustion by a
    # huge header (one connection streaming 64 MB of header): answered 431 and closed.
    max_header_bytes: int = Field(default=32 * 1024, ge=4 * 1024, le=1024 * 1024)
    # Header fields per request. Stops CPU spent on a flood of tiny headers: 431 and closed.
    max_headers: int = Field(default=100, ge=16, le=1000)
    # Seconds from a request's first byte (or a new connection) to its last: a connection
    # still trickling its head or body then is closed (slowloris, slow POST).
    request_read_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Seconds an idle keep-alive connection is kept open between requests.
    keepalive_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    # Open connections per process. At the cap, a new connection evicts the oldest one that
    # is idle or still sending its request (never one being answered), so slow clients cannot
    # hold every descriptor and a health check still gets in (T1499).
    max_connections: int = Field(default=1024, ge=16, le=1_000_000)
    # Open connections per client (IPv4 address or IPv6 /64; trusted proxies are exempt).
    max_connections_per_client: int = Field(default=64, ge=1, le=1_000_000)

    # --- auth --------------------------------------------------------------------------
    tokens_file: Path = Path("tokens.json")

    # --- logging -----------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True

    # --- request hygiene ---------------------------------------------------------------
    # Largest request body; stops memory exhaustion through huge JSON documents.
    max_body_bytes: int = Field(default=16 * 1024, ge=256, le=1024 * 1024)

    # --- rate limiting (the `limits` library) ------------------------------------------
    rate_limit_enabled: bool = True
    # memory:// is per process; redis://host:6379/0 (rediss:// with TLS, unix:///path.sock for
    # a socket) shares counts across replicas.
    rate_limit_storage: str = "memory://"
    # Per client IP before authentication: throttles token guessing.
    rate_limit_per_ip: str = "300/minute"
    # Failed authentications per client IP; past it even valid tokens wait (brute force).
    auth_failures_per_ip: str = "20/minute"
    # An address over its per-IP limit is refused at the edge; each refusal is held this long
    # first (a tarpit), so a keep-alive flood slows to a trickle instead of filling the loop.
    penalty_delay_seconds: float = Field(default=1.0, ge=0, le=10)
    # Per token, after authentication: one client cannot starve the others.
    rate_limit_per_token: str = "120/minute"  # noqa: S105 - a rate, not a password

    # --- calculate: defaults and ranges are the calculator's own (pingcalc/calc/bounds.py) -
    calc_max_length: int = _calc_bound("max_length")
    calc_max_depth: int = _calc_bound("max_depth")
    calc_max_nodes: int = _calc_bound("max_nodes")
    calc_max_int_bits: int = _calc_bound("max_int_bits")
    calc_max_args: int = _calc_bound("max_args")
    calc_cache_size: int = _calc_bound("cache_size")

    # --- ping --------------------------------------------------------------------------
    ping_backend: Literal["auto", "datagram", "subprocess"] = "auto"
    # The ping binary to fall back to (absolute; default: searched in /usr/sbin:/usr/bin:/sbin:
    # /bin, never PATH). Run only if owned by root or us and writable by no one else.
    ping_binary: Path | None = None
    ping_max_count: int = Field(default=MAX_ECHOES, ge=1, le=MAX_ECHOES)
    ping_default_count: int = Field(default=3, ge=1, le=MAX_ECHOES)
    ping_timeout_seconds: float = Field(default=1.0, gt=0, le=2.0)
    ping_interval_seconds: float = Field(default=0.2, ge=0, le=1.0)
    ping_max_in_flight: int = Field(default=32, ge=1, le=10_000)
    ping_max_per_token: int = Field(default=4, ge=1, le=1_000)
    # CIDR lists: allow wins over the default deny categories, deny wins over allow.
    # NoDecode: the environment carries a comma-separated list, not JSON.
    ping_allow: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(default_factory=list)
    ping_deny: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(default_factory=list)
    # Host names: "system" = getaddrinfo (/etc/hosts, the host's DNS); "dns://IP[:PORT]" asks
    # only that server (tests run one on loopback). Every address is then judged by the policy.
    ping_resolver: str = "system"
    ping_resolve_timeout_seconds: float = Field(default=PING_RESOLVE_TIMEOUT_SECONDS, gt=0, le=10)
    ping_max_lookups: int = Field(default=PING_MAX_LOOKUPS, ge=1, le=1_000)

    # --- audit -------------------------------------------------------------------------
    audit_file: Path | None = None
    # The initial sealing key (`pingcalc audit keygen`), required with audit_file; read only to
    # create the evolving key beside the audit file: remove it after the first start.
    audit_key_file: Path | None = Field(default=None, validate_default=True)
    audit_max_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)
    audit_on_failure: Literal["closed", "open"] = "closed"
    audit_expression_max: int = Field(default=200, ge=0, le=10_000)
    # The key evolves at each checkpoint: records older than this cannot be re-sealed.
    audit_checkpoint_seconds: float = Field(default=60.0, ge=0.1, le=86_400)
    # Where checkpoints go besides the file: stdout, syslog:///dev/log, syslog://host:514,
    # http(s)://collector/path (comma-separated). See pingcalc/audit/shipping.py.
    audit_checkpoint_to: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["stdout"])

    @field_validator("ping_allow", "ping_deny", mode="before")
    @classmethod
    def _split_cidrs(cls, value: Any) -> Any:
        """Accept `10.0.0.0/8,fd00::/8` as well as a JSON list."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [
                ip_network(item, strict=True) if isinstance(item, str) else item for item in value
            ]
        return value

    @field_validator("ping_binary")
    @classmethod
    def _check_ping_binary(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path (the binary is never looked up in PATH)")
        return value

    @field_validator("audit_key_file")
    @classmethod
    def _key_with_audit_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None and info.data.get("audit_file") is not None:
            raise ValueError(
                "required with PINGCALC_AUDIT_FILE (records are sealed with it); create it "
                "with: pingcalc audit keygen --service-key FILE --verify-key OFFLINE_FILE"
            )
        return value

    @field_validator("audit_checkpoint_to", mode="before")
    @classmethod
    def _check_destinations(cls, value: Any) -> Any:
        from pingcalc.audit.shipping import check_destination

        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [check_destination(str(item)) for item in value]
        return value

    @field_validator("ping_resolver")
    @classmethod
    def _check_resolver(cls, value: str) -> str:
        from pingcalc.ping.resolvers import check_resolver_setting

        return check_resolver_setting(value)  # ValueError names the accepted forms

    @field_validator("rate_limit_per_ip", "auth_failures_per_ip", "rate_limit_per_token")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        from pingcalc.throttle.rate import Rate

        Rate.parse(value)  # a RateSyntaxError is a ValueError: pydantic reports it
        return value

    @field_validator("forwarded_allow_ips", "connect_allow_ips")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        try:
            parse_networks(value)
        except ValueError as exc:
            raise ValueError(
                f"must be addresses or CIDR networks, comma separated ({exc})"
            ) from None
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_storage(cls, value: str) -> str:
        if not value.startswith(("memory://", *REDIS_SCHEMES)):
            raise ValueError("must start with memory://, redis://, rediss:// or unix://")
        return value


def parse_networks(spec: str) -> tuple[list[IPv4Network | IPv6Network], bool]:
    """(networks, trust everyone) from `10.0.0.0/8, 192.0.2.7, *`; raises ValueError."""
    networks: list[IPv4Network | IPv6Network] = []
    everyone = False
    for part in spec.split(","):
        item = part.strip()
        if item == "*":
            everyone = True
        elif item:
            networks.append(ip_network(item, strict=False))
    return networks, everyone


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, translating validation errors into one line per bad setting."""
    kwargs: dict[str, Any] = dict(overrides)
    named = kwargs.pop("_env_file", os.environ.get(ENV_FILE_VARIABLE) or None)
    if named is not None:  # checked and read by envfile.py; EnvFileError names the problem
        for name, value in env_file_settings(Path(named), Settings.model_fields).items():
            kwargs.setdefault(name, value)
    if SECRETS_DIR.is_dir():
        kwargs.setdefault("_secrets_dir", SECRETS_DIR)
    try:
        return Settings(**kwargs)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
    except SourceError as exc:
        # e.g. 'error parsing value for field "port" from source "EnvSettingsSource"'
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        raise SettingsError(f"invalid setting PINGCALC_{field.upper()}: cannot be parsed") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad setting by its environment variable."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        parts.append(f"PINGCALC_{field.upper()}: {error['msg']}")
    return "invalid setting " + "; ".join(parts)
