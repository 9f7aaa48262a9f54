"""A DNS server on loopback that the tests control: every answer, silence, and a query log.

It answers as a recursive resolver would (the CNAME chain and the final records in one
answer), NXDOMAIN for names it does not know, and nothing at all for names marked silent.
Answers may change from one query to the next (DNS rebinding). It runs in a daemon thread,
bound to 127.0.0.1 on a free port, and is stopped by the fixture; it never forwards.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

# Longest CNAME chain followed, so a loop in a test's zone cannot spin the server.
MAX_CHAIN = 8
TTL = 1


@dataclass
class DnsServer:
    """Zone data keyed by lower-case name without the final dot."""

    # (name, type) -> answers, one per query in turn; the last one repeats.
    records: dict[tuple[str, str], list[list[str]]] = field(default_factory=dict)
    cnames: dict[str, str] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)  # answered SERVFAIL
    queries: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _asked: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The resolver setting that selects this server."""
        return f"dns://127.0.0.1:{self.port}"

    def add(self, name: str, rdtype: str, *values: str) -> None:
        """Answer `name`/`rdtype` with `values` (every time, unless `then` adds more)."""
        self.records.setdefault((name, rdtype), []).append(list(values))

    def add_loopbacks(self, name: str) -> None:
        """Answer `name` with both loopback addresses: A 127.0.0.1 and AAAA ::1."""
        self.add(name, "A", "127.0.0.1")
        self.add(name, "AAAA", "::1")

    def then(self, name: str, rdtype: str, *values: str) -> None:
        """The next query of `name`/`rdtype` gets `values` instead (rebinding)."""
        self.add(name, rdtype, *values)

    def alias(self, name: str, target: str) -> None:
        self.cnames[name] = target

    def asked(self, name: str | None = None) -> list[tuple[str, str]]:
        """The queries received (for `name` only, if given)."""
        return [q for q in self.queries if name is None or q[0] == name]

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.05)
        self._sock, self.port = sock, sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue  # not DNS: ignore it, as a server under attack should
            response = self._answer(query)
            if response is not None:
                self._sock.sendto(response.to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.silent:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if name in self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        current = name
        for _ in range(MAX_CHAIN):
            target = self.cnames.get(current)
            if target is None:
                break
            response.answer.append(
                dns.rrset.from_text(current + ".", TTL, "IN", "CNAME", target + ".")
            )
            current = target
        answers = self.records.get((current, rdtype))
        if answers:
            turn = self._asked.get((current, rdtype), 0)
            self._asked[(current, rdtype)] = turn + 1
            values = answers[min(turn, len(answers) - 1)]
            if values:
                response.answer.append(
                    dns.rrset.from_text(current + ".", TTL, "IN", rdtype, *values)
                )
        elif not any(key[0] == current for key in self.records) and current not in self.cnames:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response


@contextmanager
def running_dns_server() -> Iterator[DnsServer]:
    """A started server, stopped (thread joined, socket closed) when the block ends."""
    server = DnsServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
