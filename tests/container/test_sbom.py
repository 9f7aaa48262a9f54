"""The SBOM of the built image lists exactly what the lock pins (issue 11: supply chain)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from container_support import DOCKER, REPO, Image, run

pytestmark = pytest.mark.container


def _normalise(name: str) -> str:
    """PEP 503 name normalisation (the SBOM keeps distribution spellings such as `Deprecated`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, str]:
    text = (REPO / "requirements.lock").read_text()
    return {
        _normalise(m.group(1)): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, re.M)
    }


def test_sbom_of_image_lists_every_locked_dependency(image: Image, tmp_path: Path) -> None:
    """T1195.001/SR-4: the CycloneDX SBOM of the image's venv names each locked package at
    its locked version, and nothing the lock does not pin (no stray pip or setuptools)."""
    out = tmp_path / "sbom.cdx.json"
    result = run(
        [str(REPO / "deploy/docker/sbom.sh"), image.tag, str(out)],
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "DOCKER": DOCKER},
    )
    assert result.returncode == 0, result.stderr
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["component"]["name"] == "pingcalc"
    components = {_normalise(c["name"]): c["version"] for c in bom["components"]}
    locked = _locked()
    assert locked, "the lock parsed to something"
    assert components == locked
    assert all(c["purl"].startswith("pkg:pypi/") for c in bom["components"])
