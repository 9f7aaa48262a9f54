"""The fallback backend: the system `ping` (iputils) with a fixed argv, never a shell.

Used where datagram ICMP sockets are not permitted. The argv is built from the *normalised*
address (`str()` of an `ipaddress` object, which cannot hold a space, a `-` prefix or a
zone id) after `--`, so even a parser bug upstream could not turn the target into an option
(T1059 command injection, option injection such as `-f` or `-s 65000`). The process gets a
minimal environment, no stdin, and is interrupted at the deadline and killed shortly after.

Its output is read line by line, so each reply is reported as ping prints it; iputils prints
nothing for a lost echo, so losses are reported when ping exits (at most its `-W` later).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import signal
from collections.abc import Callable
from ipaddress import IPv4Address

from pingcalc.ping.errors import BackendUnavailableError, ipv6_unavailable
from pingcalc.ping.interface import (
    Address,
    Echoes,
    EventSink,
    Lost,
    PingBackend,
    PingResult,
    Reply,
    ignore_event,
)

# iputils refuses intervals below 200 ms to users without CAP_NET_RAW ("cannot flood").
MIN_INTERVAL_SECONDS = 0.2
# After SIGINT at the deadline, ping prints its summary; past this grace it is killed.
KILL_GRACE_SECONDS = 0.25
# Locale C: a stable output format to parse, and "." as the decimal separator.
ENVIRONMENT = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

_REPLY_LINE = re.compile(rb"icmp_seq=(\d+) .*?time[=<]\s*([0-9]+(?:\.[0-9]+)?) ms")
_SUMMARY_LINE = re.compile(rb"(\d+) packets transmitted, (\d+) (?:packets )?received")
# stderr of a ping that cannot run at all here, as opposed to a target that does not answer.
# iputils' stderr for an IPv6 target on a host without IPv6 (its strerror texts) -> errno.
_NO_IPV6 = {
    b"Address family not supported": errno.EAFNOSUPPORT,
    b"Cannot assign requested address": errno.EADDRNOTAVAIL,
    b"Network is unreachable": errno.ENETUNREACH,
}
_UNAVAILABLE = re.compile(
    rb"Operation not permitted|Permission denied|cannot flood|Address family not supported"
    rb"|unknown iface|invalid option|usage:",
    re.IGNORECASE,
)


def _seconds(value: float) -> str:
    """`0.5`, `1`, `0.25`: plain decimal text ping parses in any version and locale."""
    return f"{max(value, 0.001):.3f}".rstrip("0").rstrip(".")


def build_argv(ping_path: str, address: Address, echoes: Echoes) -> list[str]:
    """`ping -4|-6 -n -c COUNT -W TIMEOUT [-i INTERVAL] -- ADDRESS`, every item fixed or typed."""
    argv = [
        ping_path,
        "-4" if isinstance(address, IPv4Address) else "-6",
        "-n",  # numeric output: no reverse DNS lookups of the replies
        "-c",
        str(int(echoes.count)),
        "-W",
        _seconds(echoes.timeout),
    ]
    if echoes.count > 1:
        argv += ["-i", _seconds(max(echoes.interval, MIN_INTERVAL_SECONDS))]
    # `--` ends the options; the address is the normalised text of an ipaddress object.
    argv += ["--", str(address)]
    return argv


def parse_reply_line(line: bytes, echoes: Echoes) -> Reply | None:
    """The reply one output line reports, if it is a timely reply to an echo of ours."""
    if b"DUP!" in line:
        return None
    match = _REPLY_LINE.search(line)
    if match is None:
        return None
    seq, rtt_ms = int(match[1]), float(match[2])
    if 1 <= seq <= echoes.count and rtt_ms <= echoes.timeout * 1000.0:
        return Reply(seq, rtt_ms)
    return None


def parse_output(stdout: bytes, echoes: Echoes) -> tuple[int, list[Reply]]:
    """(sent, replies) from iputils output; duplicates and late or unknown replies are dropped."""
    replies: dict[int, Reply] = {}
    for line in stdout.splitlines():
        reply = parse_reply_line(line, echoes)
        if reply is not None and reply.seq not in replies:
            replies[reply.seq] = reply
    summary = _SUMMARY_LINE.search(stdout)
    sent = int(summary[1]) if summary else max(replies, default=0)
    return min(sent, echoes.count), list(replies.values())


async def _collect(
    process: asyncio.subprocess.Process, on_line: Callable[[bytes], None]
) -> tuple[bytes, bytes]:
    """Read stdout line by line (each line to `on_line` as it arrives) and stderr, to the exit."""
    stdout, stderr = process.stdout, process.stderr
    if stdout is None or stderr is None:
        raise RuntimeError("ping was started without pipes")

    async def lines() -> bytes:
        chunks: list[bytes] = []
        try:
            while line := await stdout.readline():
                chunks.append(line)
                on_line(line)
        except ValueError:  # a line past the reader's limit: not iputils output we parse
            chunks.append(await stdout.read())
        return b"".join(chunks)

    out, err = await asyncio.gather(lines(), stderr.read())
    await process.wait()
    return out, err


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Kill `process` if it still runs and wait briefly for it, so no zombie outlives us."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    # The caller re-raises its own exception; a second cancellation only cuts this wait short.
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(process.wait(), KILL_GRACE_SECONDS)


class SubprocessBackend(PingBackend):
    """One `ping` process per request, through `asyncio.create_subprocess_exec`."""

    name = "subprocess"

    def __init__(self, ping_path: str) -> None:
        self.ping_path = ping_path

    async def ping(
        self, address: Address, echoes: Echoes, on_event: EventSink | None = None
    ) -> PingResult:
        """See `PingBackend.ping`."""
        argv = build_argv(self.ping_path, address, echoes)
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
        emit = on_event or ignore_event
        answered: set[int] = set()

        def on_line(line: bytes) -> None:
            reply = parse_reply_line(line, echoes)
            if reply is not None and reply.seq not in answered:
                answered.add(reply.seq)
                emit(reply)

        communicate = asyncio.ensure_future(_collect(process, on_line))
        try:
            done, _ = await asyncio.wait({communicate}, timeout=echoes.deadline)
            if not done:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)  # ping prints its summary and exits
                done, _ = await asyncio.wait({communicate}, timeout=KILL_GRACE_SECONDS)
            if not done:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            stdout, stderr = await communicate
        except BaseException:
            # Also on cancellation (a client gone): the process is killed and reaped now.
            await _stop(process)
            raise
        finally:
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
        sent, replies = parse_output(stdout, echoes)
        if process.returncode != 0 and sent == 0:
            # It could not even send (e.g. "Network is unreachable"): every echo is lost.
            sent = echoes.count
        for seq in range(1, sent + 1):
            if seq not in answered:
                emit(Lost(seq))
        return PingResult.build(address, sent=sent, replies=replies, backend=self.name)
