"""The README's first-page shell examples, run as written against a real server.

The block after "With the server running" is what a newcomer pastes into a second shell at
the repository root; only the `TOKEN=pc_...` placeholder line is replaced by a real token.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests_support import LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"
REPO = README.parent


def _usage_block() -> str:
    text = README.read_text(encoding="utf-8")
    after = text.split("With the server running", 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, flags=re.DOTALL)
    assert block is not None
    return block.group(1)


@pytest.mark.ping
def test_readme_curl_examples_answer_as_documented(live_server: LiveServer) -> None:
    """The calculate example prints exactly the documented answer; the ping example a result."""
    block = _usage_block()
    lines = block.splitlines()
    assert lines[0].startswith("TOKEN=pc_...")
    documented = next(line for line in lines if line.startswith("# {"))[2:]
    script = "\n".join(lines[1:])
    port = live_server.url.rsplit(":", 1)[1]
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "TOKEN": live_server.tokens.secrets["full"],
             "PINGCALC_PORT": port},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    calc, ping = done.stdout[: len(documented)], done.stdout[len(documented) :]
    assert calc == documented
    result = json.loads(ping)
    assert (result["target"], result["sent"], result["received"]) == ("127.0.0.1", 2, 2)
