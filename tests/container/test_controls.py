"""The running compose service under every container control, seen from outside and inside."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from container_support import APP_GID, APP_UID, MEM_LIMIT_BYTES, PIDS_LIMIT, Stack

pytestmark = pytest.mark.container

ALL_CAPS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def test_service_runs_as_uid_and_gid_10001(stack: Stack) -> None:
    """T1611/AC-6: process 1 runs as 10001:10001 (real, effective, saved, fs), not root."""
    status = stack.proc_status()
    assert status["Uid"].split() == [str(APP_UID)] * 4
    assert status["Gid"].split() == [str(APP_GID)] * 4
    assert set(status["Groups"].split()) <= {str(APP_GID)}  # no other group, root's least
    inside = stack.python("import os; print(os.getuid(), os.getgid(), *os.getgroups())")
    assert inside.returncode == 0, inside.stderr
    uid, gid, *groups = inside.stdout.split()
    assert (uid, gid) == (str(APP_UID), str(APP_GID)) and set(groups) <= {str(APP_GID)}


def test_service_has_no_capabilities(stack: Stack) -> None:
    """T1611: cap_drop ALL leaves every capability set empty, for pid 1 and for `docker exec`."""
    status = stack.proc_status()
    assert {name: int(status[name], 16) for name in ALL_CAPS} == dict.fromkeys(ALL_CAPS, 0)
    inside = stack.python(
        "print(*[l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')])"
    )
    assert inside.returncode == 0, inside.stderr
    assert [int(value, 16) for value in inside.stdout.split()] == [0] * 5
    # The engine was told so, too.
    host_config = stack.inspect()["HostConfig"]
    assert host_config["CapDrop"] == ["ALL"] and not host_config["CapAdd"]


def test_no_new_privileges_is_set(stack: Stack) -> None:
    """T1611/T1068: no setuid binary or file capability can raise privileges (NoNewPrivs: 1)."""
    assert stack.proc_status()["NoNewPrivs"].strip() == "1"
    inside = stack.python("print([l for l in open('/proc/1/status') if 'NoNewPrivs' in l][0])")
    assert inside.stdout.split() == ["NoNewPrivs:", "1"]
    assert "no-new-privileges:true" in stack.inspect()["HostConfig"]["SecurityOpt"]


WRITE_PROBE = """
import errno, os
for path in ("/probe", "/app/probe", "/opt/venv/probe", "/etc/probe"):
    try:
        open(path, "a").close()
        print(path, "WRITABLE")
    except OSError as exc:
        print(path, errno.errorcode[exc.errno])
with open("/tmp/probe", "w") as handle:
    handle.write("ok")
print("/tmp/probe", open("/tmp/probe").read())
with open("/tmp/probe.sh", "w") as handle:
    handle.write("#!/opt/venv/bin/python\\nprint('executed')\\n")
os.chmod("/tmp/probe.sh", 0o755)
try:
    os.execv("/tmp/probe.sh", ["/tmp/probe.sh"])
except OSError as exc:
    print("/tmp/probe.sh", errno.errorcode[exc.errno])
"""


def test_root_filesystem_is_read_only_and_tmp_is_noexec(stack: Stack) -> None:
    """T1554/CM-6: nothing in / or /app can be written (EROFS); /tmp takes files but runs none."""
    out = stack.python(WRITE_PROBE)
    assert out.returncode == 0, out.stderr
    results = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert results["/probe"] == "EROFS"
    assert results["/app/probe"] == "EROFS"
    assert results["/opt/venv/probe"] == "EROFS"
    assert results["/etc/probe"] == "EROFS"
    assert results["/tmp/probe"] == "ok"  # the legitimate scratch space works
    assert results["/tmp/probe.sh"] == errno.errorcode[errno.EACCES]  # noexec
    assert stack.inspect()["HostConfig"]["ReadonlyRootfs"] is True
    mounts = stack.python("print(open('/proc/self/mounts').read())").stdout
    tmp = next(line.split() for line in mounts.splitlines() if line.split()[1] == "/tmp")
    assert tmp[2] == "tmpfs" and {"noexec", "nosuid", "nodev"} <= set(tmp[3].split(","))


def test_tokens_secret_is_mounted_read_only_from_outside_the_image(stack: Stack) -> None:
    """SC-28: the tokens file is in a read-only mount at /run/secrets, not part of the image."""
    mounts = stack.python("print(open('/proc/self/mounts').read())").stdout
    entry = next(
        line.split() for line in mounts.splitlines() if line.split()[1].startswith("/run/secrets")
    )
    assert entry[1] == "/run/secrets"  # the directory: renames inside it reach the container
    assert "ro" in entry[3].split(",")
    bind = [m for m in stack.inspect()["Mounts"] if m["Destination"].startswith("/run/secrets")]
    assert len(bind) == 1 and bind[0]["RW"] is False


def test_engine_applies_resource_limits(stack: Stack) -> None:
    """SC-5/T1499: memory, pids, CPU and open-file limits are what compose.yaml asks for."""
    host_config = stack.inspect()["HostConfig"]
    assert host_config["Memory"] == MEM_LIMIT_BYTES
    assert host_config["PidsLimit"] == PIDS_LIMIT
    assert host_config["NanoCpus"] == 1_000_000_000
    assert {u["Name"]: u["Hard"] for u in host_config["Ulimits"]} == {"nofile": 4096}
    limits = Path(f"/proc/{stack.host_pid()}/limits").read_text()
    assert any(line.startswith("Max open files") and "4096" in line for line in limits.splitlines())


def _listeners(port: int) -> set[str]:
    """Local addresses of host sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found: set[str] = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            if family == socket.AF_INET:
                raw = raw[::-1]
            else:
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
            found.add(socket.inet_ntop(family, raw))
    return found


def test_published_port_exists_only_on_loopback(stack: Stack) -> None:
    """SC-7/T1046: the port is published on 127.0.0.1 only; other host addresses refuse it."""
    ports = stack.inspect()["NetworkSettings"]["Ports"]
    assert ports == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(stack.port)}]}
    assert _listeners(stack.port) <= {"127.0.0.1"}
    assert stack.healthy()  # the legitimate path: loopback answers
    gateways = {
        net["Gateway"]
        for net in stack.inspect()["NetworkSettings"]["Networks"].values()
        if net.get("Gateway")
    }
    assert gateways, "the compose network has a gateway address on the host"
    for address in gateways:  # a host address that is not loopback
        with pytest.raises(OSError), socket.create_connection((address, stack.port), timeout=2):
            pass


def test_health_status_turns_healthy(stack: Stack) -> None:
    """CM-6/SC-5: the image's Python probe reports healthy, through the engine's own check."""
    health = stack.inspect()["State"]["Health"]
    assert health["Status"] == "healthy"
    assert health["Log"] and all(entry["ExitCode"] == 0 for entry in health["Log"])
    assert stack.inspect()["Config"]["Healthcheck"]["Test"][0] == "CMD"  # no shell needed
