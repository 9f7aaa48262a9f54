"""An exclusive `flock` that waits a bounded time: for files several processes write.

Writers hold these locks for microseconds to milliseconds, so a longer wait means someone
holds one on purpose; the caller then fails clearly instead of hanging (the tokens file's
writers, the audit file's workers).
"""

from __future__ import annotations

import fcntl
import time

# Between two attempts: short against locks held for microseconds, long enough not to spin.
RETRY_SECONDS = 0.001


def lock_exclusive(fd: int, wait: float) -> bool:
    """Take the exclusive lock on `fd`; False if it is still held by another after `wait` s."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(RETRY_SECONDS)
