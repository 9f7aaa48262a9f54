"""Results: the file (bench/results.json), what a partial run keeps of an earlier full one,
and how one benchmark run alone shows what it measured."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def kept_sections(path: Path, measuring: list[str], sections: Iterable[str]) -> dict[str, Any]:
    """The `sections` of an earlier full run at `path` that this run does not measure, each
    stamped with when it was measured (if it is not already)."""
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    if earlier.get("quick"):
        return {}
    known = set(sections)
    kept = {}
    for name, section in earlier.get("sections", {}).items():
        if name in measuring or name not in known:
            continue
        section.setdefault("measured_at", earlier.get("generated_at", "?"))
        section.setdefault("loadavg", earlier.get("machine", {}).get("loadavg", "?"))
        kept[name] = section
    return kept


def show(measured: dict[str, Any], table: Callable[[dict[str, Any]], str]) -> None:
    """Print one benchmark's table, and its raw figures too with `--json` on the command line."""
    print(table(measured))
    if "--json" in sys.argv:
        print(json.dumps(measured, indent=2))
