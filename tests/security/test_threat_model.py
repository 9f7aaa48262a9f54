"""The threat model as code: THREAT_MODEL.md, threats.yaml, the seeds and the suite agree."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pingcalc.calc import evaluate
from pingcalc.cli import cmd_calc
from pingcalc.ping import parse_target
from threat_plugin import load_render

REPO = Path(__file__).resolve().parents[2]
SHARED_SEEDS = REPO.parent / "shared" / "seeds"


render = load_render()


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


def test_every_seed_reference_is_carried_by_a_threat_citing_its_row(
    data: dict[str, object],
) -> None:
    """Each NIST, ATT&CK and STRIDE reference of a seed row is in a threat that cites the row."""
    refs = render.all_seed_references(data)
    # The check is not vacuous: the tables name these, among others.
    assert "NIST:SI-3" in refs["microservices#controls/Command injection"]
    assert "NIST:SC-28" in refs["web-app#controls/Mutable filesystem"]
    assert "ATT&CK:T1611" in refs["web-app#attack/T1611"]
    assert "STRIDE:Repudiation" in refs["microservices#stride/Repudiation"]
    # STRIDE 6+6, ATT&CK 6+4, NIST 16 in the two controls tables.
    assert sum(len(r) for r in refs.values()) == 38
    assert render.missing_seed_references(data) == []


def test_a_dropped_seed_reference_is_named_with_its_row(data: dict[str, object]) -> None:
    """Removing SI-3 from TM-04, T1611 from TM-16 or a correction is reported by row."""
    broken = copy.deepcopy(data)
    by_id = {t["id"]: t for t in broken["threats"]}  # type: ignore[attr-defined]
    by_id["TM-04"]["controls"] = ["NIST 800-53: SI-10, CM-7"]
    by_id["TM-16"]["attack"] = ["T1068", "T1610"]
    broken["seed_corrections"] = []
    problems = render.missing_seed_references(broken)
    assert (
        "microservices#controls/Command injection: NIST SI-3 is in no threat citing the row "
        "(TM-04)" in problems
    )
    assert any(p.startswith("web-app#attack/T1611: ATT&CK T1611 ") for p in problems)
    assert any(p.startswith("microservices#attack/T1203: ATT&CK T1203 ") for p in problems)


def test_every_implemented_by_entry_resolves(data: dict[str, object]) -> None:
    """Each code entry imports and names a function or class body in src/pingcalc; each
    configuration entry exists. A stale entry is named with its threat."""
    errors = [
        f"{threat['id']}: {error}"
        for threat in data["threats"]  # type: ignore[attr-defined]
        for error in render.entry_errors(threat)
    ]
    assert errors == []
    for threat in data["threats"]:  # type: ignore[attr-defined]
        assert threat["implemented_by"], threat["id"]
        for entry in threat["implemented_by"]:
            if render.is_code_entry(entry):
                target = render.resolve_code(entry)
                assert target.path.startswith("src/pingcalc/")
                assert target.start <= min(target.lines) <= max(target.lines) <= target.end


def test_an_entry_that_does_not_import_is_named() -> None:
    """A module that is gone (renamed, moved) makes the entry and the schema check fail."""
    with pytest.raises(
        render.EntryError, match=re.escape("module pingcalc.no_such_module does not import")
    ):
        render.resolve_code("pingcalc.no_such_module:thing")
    threat = {"implemented_by": ["pingcalc.no_such_module:thing", "pingcalc.auth:create_token"]}
    (error,) = render.entry_errors(threat)
    assert error.startswith("pingcalc.no_such_module:thing: module")


def test_a_qualname_that_does_not_exist_is_named() -> None:
    """A missing attribute, a constant and a re-export are refused with what to do."""
    with pytest.raises(render.EntryError, match="has no attribute NoSuchClass"):
        render.resolve_code("pingcalc.auth:NoSuchClass")
    with pytest.raises(
        render.EntryError, match=re.escape("has no attribute TokenStore.no_such_method")
    ):
        render.resolve_code("pingcalc.auth:TokenStore.no_such_method")
    with pytest.raises(render.EntryError, match="not a function or class"):
        render.resolve_code("pingcalc.auth:MAX_PRESENTED_LENGTH")
    with pytest.raises(render.EntryError, match=re.escape("is defined in pingcalc.ping.policy")):
        render.resolve_code("pingcalc.ping:TargetPolicy")
    with pytest.raises(render.EntryError, match=re.escape("not `module.path:QualName`")):
        render.resolve_code("pingcalc auth:TokenStore")


def test_a_configuration_path_that_does_not_exist_is_named() -> None:
    """Paths are checked against the repository; none may leave it."""
    threat = {"implemented_by": ["deploy/kubernetes/no-such.yaml", "../etc/passwd", "Dockerfile"]}
    assert render.entry_errors(threat) == [
        "deploy/kubernetes/no-such.yaml: no such file in the repository",
        "../etc/passwd: a configuration entry is a path inside the repository",
    ]


def test_code_lines_are_only_those_a_call_runs() -> None:
    """Importing a module runs `def` lines and a closure's `def` inside its factory: those
    never count as reaching the entry; the link covers the whole definition."""
    from pingcalc.api import calculate

    target = render.resolve_code(_entry(calculate.route) + ".<locals>.calculate")
    source = Path(calculate.__file__).read_text(encoding="utf-8").splitlines()
    def_line = next(
        n for n, line in enumerate(source, 1) if line.strip().startswith("async def calculate(")
    )
    assert target.start == def_line and def_line not in target.lines
    assert target.link == f"src/pingcalc/api/calculate.py#L{target.start}-L{target.end}"
    outer = render.resolve_code(_entry(calculate.route))
    assert outer.lines > target.lines  # the factory's own lines run at start-up, the closure's not


def test_validation_names_stale_entries_per_threat(data: dict[str, object]) -> None:
    """`validate` (and so `render.py --check` and `make lint`) fails on a stale entry."""
    broken = copy.deepcopy(data)
    broken["threats"][0]["implemented_by"] = ["pingcalc.limits_gone:RateLimiter"]  # type: ignore[index]
    errors = render.validate(broken)
    stale = "TM-01: implemented_by pingcalc.limits_gone:RateLimiter: module"
    assert any(e.startswith(stale) for e in errors), errors


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
    result = _nested_pytest(REPO, "--collect-only", "-q", env=_child_env(), timeout=300)
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


def _write_project(root: Path, threats: str, **test_modules: str) -> None:
    """A project in `root` whose tests run under the threat plugin: `tests/<name>.py` for
    each module given, its `threats.yaml`, and the repository's test helpers on the path."""
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "conftest.py").write_text(PLUGIN_CONFTEST)
    for name, text in test_modules.items():
        (root / "tests" / f"{name}.py").write_text(text)
    (root / "threats.yaml").write_text(threats)
    (root / "pyproject.toml").write_text(
        f'[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["{REPO / "tests"}"]\n'
    )


def _nested_pytest(
    cwd: Path, *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A pytest run of the project in `cwd`, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=timeout,
    )


def _child_env(*, keep_coverage: bool = False) -> dict[str, str]:
    """This environment without CI and the plugin's switches and, unless kept, this run's
    coverage hooks (a nested run that inherits them must still measure on its own)."""
    drop = {"CI"}
    if not keep_coverage:
        drop |= {"COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG"}
    return {
        k: v
        for k, v in os.environ.items()
        if k not in drop
        and not k.startswith("PINGCALC_THREATS")
        and (keep_coverage or not k.startswith("THREATS_COVERAGE"))
    }


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
    _write_project(tmp_path, PLUGIN_THREATS, test_x=PLUGIN_TESTS)
    env = _child_env()
    env["PINGCALC_THREATS_FILE"] = str(tmp_path / "threats.yaml")
    if ci:
        env["CI"] = "true"
    if force_full:
        env["PINGCALC_THREATS_FULL"] = "1"
    return _nested_pytest(tmp_path, *args, env=env)


def test_plugin_counts_and_fails_unverified_threats_in_ci(tmp_path: Path) -> None:
    """A failing, skipped or missing verifying test leaves its threat unverified and fails CI."""
    result = _run_plugin(tmp_path, ci=True)
    out = result.stdout
    assert "threats verified: 1/4 (full run; enforced; reach checked" in out
    assert "TM-02 unverified: tests/test_x.py::test_bad failed" in out
    assert "TM-03 unverified: tests/test_x.py::test_skipped skipped" in out
    assert "TM-04 unverified: tests/test_x.py::test_gone does not exist" in out
    assert result.returncode == 1


def test_plugin_only_reports_on_a_partial_run(tmp_path: Path) -> None:
    """A selection of tests reports what it verified but does not fail for the rest."""
    result = _run_plugin(tmp_path, "-k", "good or param", ci=True)
    assert "threats verified: 1/4 (partial run, 3 not run; enforced; reach checked" in result.stdout
    assert result.returncode == 0, result.stdout[-2000:]


def test_plugin_enforces_only_in_ci(tmp_path: Path) -> None:
    """A declared full run reports unverified threats locally and fails only under CI=true."""
    args = ("--deselect", "tests/test_x.py::test_bad")
    local = _run_plugin(tmp_path, *args, ci=False, force_full=True)
    assert "threats verified: 1/4 (full run; report only; reach checked" in local.stdout
    assert local.returncode == 0, local.stdout[-2000:]
    in_ci = _run_plugin(tmp_path, *args, ci=True, force_full=True)
    assert "threats verified: 1/4 (full run; enforced; reach checked" in in_ci.stdout
    assert in_ci.returncode == 1


# --- reach: the verifying tests must run the code and use the configuration --------------

REACH_TESTS = """
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pingcalc.calc import evaluate
from pingcalc.ping import parse_target

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "conf" / "settings.conf"
PINGCALC = str(Path(sys.executable).with_name("pingcalc"))


def _calc(expression):
    done = subprocess.run([PINGCALC, "calc", expression], capture_output=True, text=True)
    return done.stdout.strip()


def test_evaluates_and_reads():
    assert evaluate("1+2") == 3
    assert SETTINGS.read_text() == "x = 1\\n"


def test_imports_only():
    assert callable(parse_target)


def test_cli_in_a_subprocess():
    assert _calc("6*7") == "42"


@pytest.fixture(scope="module")
def shared():
    return _calc("2+2")


def test_first_user(shared):
    assert shared == "4"


def test_second_user(shared):
    assert shared == "4"


def test_copies(tmp_path):
    shutil.copy(SETTINGS, tmp_path / "copy.conf")


def test_hands_over(uses_configuration):
    uses_configuration("conf/settings.conf")


def test_passes_as_argument():
    subprocess.run(["cat", str(SETTINGS)], capture_output=True, check=True)
"""

REACH_MODULE_TESTS = """
from pathlib import Path

# Read when the module is imported (collection): counts for the module's tests.
DATA = (Path(__file__).resolve().parent.parent / "conf" / "module.conf").read_text()


def test_uses_what_the_module_read():
    assert DATA == "y = 2\\n"
"""


def _entry(function: Callable[..., object]) -> str:
    return f"{function.__module__}:{function.__qualname__}"


def _reach_threats() -> str:
    """The nested project's threats.yaml. The code entries are computed, so the test follows
    the code when it moves."""
    settings = "conf/settings.conf"
    threats = {  # id: (verified_by, implemented_by)
        "TM-01": (["tests/test_r.py::test_evaluates_and_reads"], [_entry(evaluate), settings]),
        "TM-02": (
            ["tests/test_r.py::test_evaluates_and_reads", "tests/test_r.py::test_imports_only"],
            [_entry(parse_target)],
        ),
        "TM-03": (["tests/test_r.py::test_imports_only"], [settings]),
        "TM-04": (["tests/test_r.py::test_cli_in_a_subprocess"], [_entry(cmd_calc)]),
        "TM-05": (["tests/test_r.py::test_second_user"], [_entry(cmd_calc)]),
        "TM-06": (["tests/test_r.py::test_evaluates_and_reads"], ["pingcalc.no_such_module:thing"]),
        "TM-07": (["tests/test_r.py::test_copies"], [settings]),
        "TM-08": (["tests/test_r.py::test_hands_over"], [settings]),
        "TM-09": (["tests/test_r.py::test_passes_as_argument"], [settings]),
        "TM-10": (["tests/test_m.py::test_uses_what_the_module_read"], ["conf/module.conf"]),
    }
    return yaml.safe_dump(
        {
            "threats": [
                {"id": id_, "verified_by": tests, "implemented_by": entries}
                for id_, (tests, entries) in threats.items()
            ]
        }
    )


def _run_reach(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "settings.conf").write_text("x = 1\n")
    (tmp_path / "conf" / "module.conf").write_text("y = 2\n")
    _write_project(tmp_path, _reach_threats(), test_m=REACH_MODULE_TESTS, test_r=REACH_TESTS)
    return _nested_pytest(
        tmp_path,
        env={
            # Inherited: when this run measures, the nested run starts as a measured child.
            **_child_env(keep_coverage=True),
            "PINGCALC_THREATS_FILE": str(tmp_path / "threats.yaml"),
            "CI": "true",
            **env,
        },
    )


def test_plugin_requires_tests_to_reach_their_code_and_configuration(tmp_path: Path) -> None:
    """A threat whose passing tests never run its code or use its configuration is
    unverified; subprocesses, shared fixtures and a test module's own import count, copies and
    imports of the code under test do not."""
    result = _run_reach(tmp_path)
    out = result.stdout
    assert "9 passed" in out, out[-3000:]
    assert "threats verified: 6/10 (full run; enforced; reach checked" in out, out[-3000:]
    assert (
        f"TM-02 unverified: {_entry(parse_target)} is never executed by its "
        "verified_by tests; tests: tests/test_r.py::test_evaluates_and_reads, "
        "tests/test_r.py::test_imports_only"
    ) in out
    assert (
        "TM-03 unverified: conf/settings.conf is never read or handed over by its verified_by "
        "tests; tests: tests/test_r.py::test_imports_only"
    ) in out
    assert (
        "TM-06 unverified: implemented_by pingcalc.no_such_module:thing: module "
        "pingcalc.no_such_module does not import"
    ) in out
    assert "TM-07 unverified: conf/settings.conf is never read" in out
    for verified in ("TM-01", "TM-04", "TM-05", "TM-08", "TM-09", "TM-10"):
        assert f"{verified} unverified" not in out
    assert result.returncode == 1


def test_plugin_without_reach_measurement_verifies_nothing_in_ci(tmp_path: Path) -> None:
    """Turning the measurement off does not turn the check off where it is enforced."""
    result = _run_reach(tmp_path, PINGCALC_THREATS_REACH="0")
    assert "threats verified: 0/10 (full run; enforced; reach not checked)" in result.stdout
    assert "TM-01 unverified: its implementation's reach was not measured" in result.stdout
    assert result.returncode == 1
