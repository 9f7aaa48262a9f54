"""The penalty box: keys (addresses, token hashes) over their rate limit, refused at the edge.

Under a flood, answering each request of an over-limit client through routing,
authentication and the limiter costs as much as serving it; a dictionary lookup in the edge
costs almost nothing, so legitimate clients keep their latency (T1499).
"""

from __future__ import annotations

import math
import time

# Most keys the box remembers. Past it, new offenders go through the normal (still limiting,
# just costlier) path instead of growing memory without bound: about 120 bytes a key.
PENALTY_BOX_MAX = 100_000


class PenaltyBox:
    """Keys refused until a moment in time; expired entries are dropped when seen or swept."""

    def __init__(self, max_entries: int = PENALTY_BOX_MAX) -> None:
        self.max_entries = max_entries
        self._until: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._until)

    def add(self, key: str, seconds: float) -> None:
        """Refuse `key` for the next `seconds`."""
        now = time.monotonic()
        if len(self._until) >= self.max_entries:
            self._until = {k: t for k, t in self._until.items() if t > now}
            if len(self._until) >= self.max_entries:
                return
        self._until[key] = now + seconds

    def retry_after(self, key: str) -> int:
        """Seconds `key` must still wait, or 0 when it may pass."""
        until = self._until.get(key)
        if until is None:
            return 0
        remaining = until - time.monotonic()
        if remaining <= 0:
            del self._until[key]
            return 0
        return math.ceil(remaining)


def token_key(token_sha256: str) -> str:
    """The box key of a token over its limit: by hash, so the secret is never kept."""
    return "token:" + token_sha256
