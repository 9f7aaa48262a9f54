"""The compose commands the docs show name what compose.yaml defines: a newcomer copying
`deploy/compose.sh logs -f pingcalc` or a curl to 127.0.0.1:8080 reaches the real service."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypedDict

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Compose subcommands whose other words are service names.
TAKES_SERVICES = {"logs", "exec", "ps", "restart", "stop", "start", "up", "run", "kill", "top"}


class ComposeService(TypedDict, total=False):
    """The part of a compose.yaml service these tests read."""

    ports: list[str]


class ComposeFile(TypedDict):
    """The part of compose.yaml these tests read."""

    services: dict[str, ComposeService]


def _compose() -> ComposeFile:
    data: ComposeFile = yaml.safe_load((REPO / "compose.yaml").read_text())
    return data


def test_compose_commands_in_the_docs_name_services_of_compose_yaml() -> None:
    """Every service a documented compose command names exists in compose.yaml."""
    services = set(_compose()["services"])
    seen = 0
    for doc in DOCS:
        for match in re.finditer(
            r"(?:docker compose|docker-compose|deploy/compose\.sh)((?: [^\s#`]+)+)", doc.read_text()
        ):
            words = match.group(1).split()
            if not words or words[0] not in TAKES_SERVICES:
                continue
            words = words[: words.index("|")] if "|" in words else words  # a pipe ends it
            named = [w for w in words[1:] if not w.startswith("-") and not w.isdigit()]
            assert set(named) <= services, (doc.name, match.group(0))
            seen += 1
    assert seen >= 1


def test_documented_container_port_is_the_published_default() -> None:
    """The port the container docs curl is the one compose.yaml publishes by default."""
    service = _compose()["services"]["pingcalc"]
    [published] = service["ports"]
    default = re.fullmatch(r"127\.0\.0\.1:\$\{PINGCALC_PUBLISH_PORT:-(\d+)\}:8080", published)
    assert default is not None, published
    readme = (REPO / "README.md").read_text().split("## Run it in a container", 1)[1]
    section = readme.split("\n## ", 1)[0]
    assert f"${{PINGCALC_PUBLISH_PORT:-{default[1]}}}" in section
    for doc in (REPO / "docs" / "container.md",):
        ports = set(re.findall(r"127\.0\.0\.1:(\d+)", doc.read_text()))
        assert ports <= {default[1], "9090"}, ports  # 9090: the documented override example
