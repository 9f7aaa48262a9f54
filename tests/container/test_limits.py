"""Resource limits under attack: a fork loop and a memory hog inside the running container.

Both run as `docker exec` with the image's Python, i.e. as an intruder with code execution in
the container would. Each proves the limit stops the attack AND that the service still answers.
"""

from __future__ import annotations

import json

import pytest

from container_support import PIDS_LIMIT, Stack

pytestmark = pytest.mark.container

# Never fork more than this, whatever happens: bounds the test if the limit were missing.
FORK_CEILING = 2 * PIDS_LIMIT
# Allocate up to 4x the memory limit in touched 16 MiB chunks, reporting progress.
HOG_CHUNK_MB = 16
HOG_CEILING_MB = 1024

FORK_LOOP = f"""
import json, os, signal, time
children, error = [], None
while len(children) < {FORK_CEILING}:
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.strerror
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.kill(pid, signal.SIGKILL)
for pid in children:
    os.waitpid(pid, 0)
print(json.dumps({{"forked": len(children), "error": error}}))
"""

MEMORY_HOG = f"""
import sys
chunks = []
for mb in range({HOG_CHUNK_MB}, {HOG_CEILING_MB} + 1, {HOG_CHUNK_MB}):
    chunks.append(b"\\x01" * ({HOG_CHUNK_MB} << 20))  # written, so really resident
    print(mb, flush=True)
"""


def _process_one_unchanged(stack: Stack, before: dict[str, object]) -> None:
    state = stack.inspect()["State"]
    assert state["Status"] == "running"
    assert state["Pid"] == before["Pid"] and state["StartedAt"] == before["StartedAt"]
    assert stack.inspect()["RestartCount"] == 0
    assert stack.healthy()


def test_fork_loop_is_stopped_by_pids_limit_and_service_survives(stack: Stack) -> None:
    """T1499/SC-5: a fork bomb hits pids_limit (EAGAIN) long before the host's limit."""
    before = stack.inspect()["State"]
    out = stack.python(FORK_LOOP, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    print(f"\nfork loop: {result['forked']} children before {result['error']!r}")
    assert result["error"] == "Resource temporarily unavailable"
    assert 0 < result["forked"] < PIDS_LIMIT
    _process_one_unchanged(stack, before)
    with stack.client("full") as client:  # the service still does its work
        assert client.get("/readyz").status_code == 200


def test_memory_hog_is_killed_alone(stack: Stack) -> None:
    """T1499/SC-5: allocating past mem_limit gets the offender OOM-killed; pid 1 lives on."""
    before = stack.inspect()["State"]
    out = stack.python(MEMORY_HOG, timeout=120)
    reached = [int(line) for line in out.stdout.split()]
    print(f"\nmemory hog: killed after {reached[-1] if reached else 0} MiB (exit {out.returncode})")
    assert out.returncode == 137  # SIGKILL from the OOM killer, not a MemoryError
    assert reached and reached[-1] < 256  # it never held the limit's worth
    _process_one_unchanged(stack, before)
