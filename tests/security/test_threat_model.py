"""The threat model as code: THREAT_MODEL.md, threats.yaml, the seeds and the suite agree."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_SEEDS = REPO.parent / "shared" / "seeds"


def _load_render() -> ModuleType:
    # threat-model/ is a folder of data and one script, not a package (its name has a hyphen).
    spec = importlib.util.spec_from_file_location(
        "threat_render", REPO / "threat-model" / "render.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_render()


@pytest.fixture(scope="module")
def data() -> dict[str, object]:
    loaded: dict[str, object] = render.load()
    return loaded


def test_threats_file_matches_its_schema(data: dict[str, object]) -> None:
    """Every threat has STRIDE, ATT&CK, controls, ratings, mitigation, status, verified_by."""
    assert render.validate(data) == []
    assert len(data["threats"]) >= 20  # type: ignore[arg-type]


def test_validation_catches_an_incomplete_threat(data: dict[str, object]) -> None:
    """The schema check is not vacuous: a threat without tests or residual risk is reported."""
    broken = dict(data)
    threat = dict(data["threats"][0])  # type: ignore[index]
    threat.update(verified_by=[], status="partially mitigated", stride=["Sneaking"])
    threat.pop("residual", None)
    broken["threats"] = [threat]
    errors = " ".join(render.validate(broken))
    assert "verified_by is empty" in errors
    assert "needs `residual`" in errors
    assert "unknown STRIDE category" in errors


def test_threat_model_markdown_is_up_to_date(data: dict[str, object]) -> None:
    """The committed THREAT_MODEL.md is exactly what render.py makes of threats.yaml."""
    committed = (REPO / "THREAT_MODEL.md").read_text(encoding="utf-8")
    assert committed == render.render(data), "run `make threat-model` and commit THREAT_MODEL.md"
    result = subprocess.run(
        [sys.executable, str(REPO / "threat-model" / "render.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_seed_row_maps_to_a_threat(data: dict[str, object]) -> None:
    """Each row of both source documents' tables is covered by at least one threat."""
    rows = render.all_seed_rows(data)
    # STRIDE 6+6, ATT&CK 6+4, controls 8+5, risk summary 6.
    assert len(rows) == 41
    covered = {source for threat in data["threats"] for source in threat["sources"]}  # type: ignore[attr-defined]
    assert [row for row in rows if row not in covered] == []
    assert sorted(covered - set(rows)) == [], "a `sources` entry names no seed row"


def test_vendored_seeds_are_the_shared_originals() -> None:
    """threat-model/seeds/ are byte-for-byte copies of ../shared/seeds/ where that exists."""
    vendored = sorted((REPO / "threat-model" / "seeds").glob("*.md"))
    assert [p.name for p in vendored] == [
        "threat-model-microservices.md",
        "threat-model-web-app.md",
    ]
    if SHARED_SEEDS.is_dir():
        for path in vendored:
            assert path.read_bytes() == (SHARED_SEEDS / path.name).read_bytes()


def test_every_verified_by_node_id_is_collected(data: dict[str, object]) -> None:
    """Each verified_by id names a test that exists in the collected suite."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PINGCALC_THREATS_FULL")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    missing = [
        node_id
        for threat in data["threats"]  # type: ignore[attr-defined]
        for node_id in threat["verified_by"]
        if not any(
            item == node_id or item.startswith((node_id + "[", node_id + "::"))
            for item in collected
        )
    ]
    assert missing == []


PLUGIN_CONFTEST = """
pytest_plugins = ["threat_plugin"]
"""

PLUGIN_TESTS = """
import pytest

def test_good():
    assert True

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    assert n

def test_bad():
    assert False

def test_skipped():
    pytest.skip("no tool")
"""

PLUGIN_THREATS = """
threats:
  - {id: TM-01, verified_by: ["tests/test_x.py::test_good", "tests/test_x.py::test_param"]}
  - {id: TM-02, verified_by: ["tests/test_x.py::test_bad"]}
  - {id: TM-03, verified_by: ["tests/test_x.py::test_skipped"]}
  - {id: TM-04, verified_by: ["tests/test_x.py::test_gone"]}
"""


def _run_plugin(
    tmp_path: Path, *args: str, ci: bool, force_full: bool = False
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "tests" / "conftest.py").write_text(PLUGIN_CONFTEST)
    (tmp_path / "tests" / "test_x.py").write_text(PLUGIN_TESTS)
    (tmp_path / "threats.yaml").write_text(PLUGIN_THREATS)
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["{REPO / "tests"}"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINGCALC_THREATS")}
    env.pop("CI", None)
    env["PINGCALC_THREATS_FILE"] = str(tmp_path / "threats.yaml")
    if ci:
        env["CI"] = "true"
    if force_full:
        env["PINGCALC_THREATS_FULL"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_plugin_counts_and_fails_unverified_threats_in_ci(tmp_path: Path) -> None:
    """A failing, skipped or missing verifying test leaves its threat unverified and fails CI."""
    result = _run_plugin(tmp_path, ci=True)
    out = result.stdout
    assert "threats verified: 1/4 (full run; enforced)" in out
    assert "TM-02 unverified: tests/test_x.py::test_bad failed" in out
    assert "TM-03 unverified: tests/test_x.py::test_skipped skipped" in out
    assert "TM-04 unverified: tests/test_x.py::test_gone does not exist" in out
    assert result.returncode == 1


def test_plugin_only_reports_on_a_partial_run(tmp_path: Path) -> None:
    """A selection of tests reports what it verified but does not fail for the rest."""
    result = _run_plugin(tmp_path, "-k", "good or param", ci=True)
    assert "threats verified: 1/4 (partial run, 3 not run; enforced)" in result.stdout
    assert result.returncode == 0, result.stdout[-2000:]


def test_plugin_enforces_only_in_ci(tmp_path: Path) -> None:
    """A declared full run reports unverified threats locally and fails only under CI=true."""
    args = ("--deselect", "tests/test_x.py::test_bad")
    local = _run_plugin(tmp_path, *args, ci=False, force_full=True)
    assert "threats verified: 1/4 (full run; report only)" in local.stdout
    assert local.returncode == 0, local.stdout[-2000:]
    in_ci = _run_plugin(tmp_path, *args, ci=True, force_full=True)
    assert "threats verified: 1/4 (full run; enforced)" in in_ci.stdout
    assert in_ci.returncode == 1
