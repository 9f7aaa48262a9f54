"""The fallback backend: the system `ping` (iputils) with a fixed argv, never a shell.

Used where datagram ICMP sockets are not permitted. The argv is built from the *normalised*
address (`str()` of an `ipaddress` object, which cannot hold a space, a `-` prefix or a
zone id) after `--`, so even a parser bug upstream could not turn the target into an option
(T1059 command injection, option injection such as `-f` or `-s 65000`). The process gets a
minimal environment, no stdin, and is interrupted at the deadline and killed shortly after.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import signal
from ipaddress import IPv4Address

from pingcalc.ping.interface import (
    Address,
    BackendUnavailableError,
    PingBackend,
    PingResult,
    Reply,
    ipv6_unavailable,
)

# iputils refuses intervals below 200 ms to users without CAP_NET_RAW ("cannot flood").
MIN_INTERVAL_SECONDS = 0.2
# After SIGINT at the deadline, ping prints its summary; past this grace it is killed.
KILL_GRACE_SECONDS = 0.25
# Locale C: a stable output format to parse, and "." as the decimal separator.
ENVIRONMENT = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

_REPLY_LINE = re.compile(rb"icmp_seq=(\d+) .*?time[=<]\s*([0-9]+(?:\.[0-9]+)?) ms")
_SUMMARY_LINE = re.compile(rb"(\d+) packets transmitted, (\d+) (?:packets )?received")
# iputils' stderr for an IPv6 target on a host without IPv6 (its strerror texts) -> errno.
_NO_IPV6 = {
    b"Address family not supported": errno.EAFNOSUPPORT,
    b"Cannot assign requested address": errno.EADDRNOTAVAIL,
    b"Network is unreachable": errno.ENETUNREACH,
}
# stderr of a ping that cannot run at all here, as opposed to a target that does not answer.
_UNAVAILABLE = re.compile(
    rb"Operation not permitted|Permission denied|cannot flood|Address family not supported"
    rb"|unknown iface|invalid option|usage:",
    re.IGNORECASE,
)


def _seconds(value: float) -> str:
    """`0.5`, `1`, `0.25`: plain decimal text ping parses in any version and locale."""
    return f"{max(value, 0.001):.3f}".rstrip("0").rstrip(".")


def build_argv(
    ping_path: str, address: Address, *, count: int, timeout: float, interval: float
) -> list[str]:
    """`ping -4|-6 -n -c COUNT -W TIMEOUT [-i INTERVAL] -- ADDRESS`, every item fixed or typed."""
    argv = [
        ping_path,
        "-4" if isinstance(address, IPv4Address) else "-6",
        "-n",  # numeric output: no reverse DNS lookups of the replies
        "-c",
        str(int(count)),
        "-W",
        _seconds(timeout),
    ]
    if count > 1:
        argv += ["-i", _seconds(max(interval, MIN_INTERVAL_SECONDS))]
    # `--` ends the options; the address is the normalised text of an ipaddress object.
    argv += ["--", str(address)]
    return argv


def parse_output(stdout: bytes, *, count: int, timeout: float) -> tuple[int, list[Reply]]:
    """(sent, replies) from iputils output; duplicates and late or unknown replies are dropped."""
    replies: dict[int, Reply] = {}
    for line in stdout.splitlines():
        if b"DUP!" in line:
            continue
        match = _REPLY_LINE.search(line)
        if match is None:
            continue
        seq, rtt_ms = int(match[1]), float(match[2])
        if 1 <= seq <= count and seq not in replies and rtt_ms <= timeout * 1000.0:
            replies[seq] = Reply(seq, rtt_ms)
    summary = _SUMMARY_LINE.search(stdout)
    sent = int(summary[1]) if summary else max(replies, default=0)
    return min(sent, count), list(replies.values())


class SubprocessBackend(PingBackend):
    """One `ping` process per request, through `asyncio.create_subprocess_exec`."""

    name = "subprocess"

    def __init__(self, ping_path: str) -> None:
        self.ping_path = ping_path

    async def ping(
        self,
        address: Address,
        *,
        count: int,
        timeout: float,  # noqa: ASYNC109 - per-echo reply wait, not a call timeout
        interval: float,
        deadline: float,
    ) -> PingResult:
        """See `PingBackend.ping`."""
        argv = build_argv(self.ping_path, address, count=count, timeout=timeout, interval=interval)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=ENVIRONMENT,
                start_new_session=True,  # a signal to the server's group does not reach it
            )
        except OSError as exc:
            raise BackendUnavailableError(f"cannot run {self.ping_path}: {exc.strerror}") from None
        communicate = asyncio.ensure_future(process.communicate())
        try:
            done, _ = await asyncio.wait({communicate}, timeout=deadline)
            if not done:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)  # ping prints its summary and exits
                done, _ = await asyncio.wait({communicate}, timeout=KILL_GRACE_SECONDS)
            if not done:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            stdout, stderr = await communicate
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            if not communicate.done():
                communicate.cancel()
        if process.returncode == 2 and address.version == 6:
            for text, code in _NO_IPV6.items():
                no_ipv6 = ipv6_unavailable(code) if text in stderr else None
                if no_ipv6 is not None:
                    raise no_ipv6
        if process.returncode == 2 and _UNAVAILABLE.search(stderr):
            message = stderr.decode("ascii", "replace").strip().splitlines()
            raise BackendUnavailableError(
                f"{self.ping_path} cannot ping here: {message[0][:200] if message else 'exit 2'}"
            )
        sent, replies = parse_output(stdout, count=count, timeout=timeout)
        if process.returncode != 0 and sent == 0:
            # It could not even send (e.g. "Network is unreachable"): every echo is lost.
            sent = count
        return PingResult.build(address, sent=sent, replies=replies, backend=self.name)
