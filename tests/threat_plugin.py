"""pytest plugin: which threats of threat-model/threats.yaml did this run verify?

A threat is verified when every node id in its `verified_by` matched at least one test that
ran, and every matching test passed (a failure, an error in setup or teardown, a skip or an
xfail leaves it unverified), and those tests reached its implementation. A node id without
parameters (`file.py::test_x`) matches all of its parametrized cases. The plugin prints
`threats verified: N/M` in the terminal summary.

Reach: each threat's `implemented_by` names code (`module.path:QualName`) and configuration
(repository paths). The run measures, per test, which lines of `src/pingcalc` it executed
(coverage.py with one context per test, in this process and in every Python process the tests
start: `pingcalc serve` and its workers, the CLI) and which configuration files it used. A
threat stays unverified unless its passing `verified_by` tests together
- executed at least one body line of every code entry (a line that only a call runs, never
  the `def` that importing the module runs), and
- used every configuration entry: opened it for reading in this process (`open` is watched;
  copies made with shutil do not count), passed it as an argument to a tool
  (`subprocess.Popen` is watched: `compose -f compose.yaml`, `hadolint Dockerfile`), or
  handed it over through the `uses_configuration` fixture (what the engine builds the image
  from). A file is a test's own evidence, not something that merely exists.
Work done while a fixture wider than one test is set up (a module's shared server, the
session's image or Compose stack) is labelled with that fixture and counts for every test
that uses it; work done while a test module is imported (module-level test data, such as the
rendered Kubernetes manifests) counts for every test of that module. Code that only a
container runs (the image's own Python) cannot be measured: such a threat names the
configuration that builds and runs the container, and says so in its `implementation_note`.

Measurement is on by default (a few per cent of the run, see the report at the end);
`PINGCALC_THREATS_REACH=0` turns it off. A run that could not measure reach (turned off, or
coverage.py already running in this process) counts, when enforced, every threat with an
`implemented_by` as unverified.

When does it fail the run? Only in a *full* run, and only in CI (`CI=true`) or with
`PINGCALC_THREATS_STRICT=1`:
- a full run is one that collected the whole suite (pytest invoked with no path, or with the
  configured `testpaths`) and deselected nothing (no `-k`, `-m`, `--lf`, `--deselect`);
  `PINGCALC_THREATS_FULL=1` declares a run full whatever its arguments;
- in a full run a `verified_by` id that matches no collected test is an error, and so is
  every unverified threat.
A partial run (`pytest tests/unit`) only reports: tests it did not select are "not run".
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import importlib.util
import io
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
THREATS_FILE = Path(os.environ.get("PINGCALC_THREATS_FILE", REPO / "threat-model" / "threats.yaml"))
IN_CI = os.environ.get("CI", "").lower() == "true"
STRICT = IN_CI or os.environ.get("PINGCALC_THREATS_STRICT") == "1"
FORCE_FULL = os.environ.get("PINGCALC_THREATS_FULL") == "1"
MEASURE = os.environ.get("PINGCALC_THREATS_REACH", "1") != "0"

# coverage.py's settings for the reach check; the variables it reads are set per test here.
COVERAGE_CONFIG = Path(__file__).resolve().with_name("threat_coverage.ini")
# Not PINGCALC_*: tests start servers with the PINGCALC_* variables removed.
CONTEXT_VAR = "THREATS_COVERAGE_CONTEXT"
DATA_VAR = "THREATS_COVERAGE_DATA"
CHILD_VARS = ("COVERAGE_PROCESS_START", CONTEXT_VAR, DATA_VAR)
_SHUTIL = shutil.__file__
_COPIERS = frozenset({"copyfile", "copy", "copy2", "copytree", "_copytree"})


def _matches(node_id: str, item_id: str) -> bool:
    """`file::test` covers `file::test[case]`; `file::Class` covers its methods."""
    return item_id == node_id or item_id.startswith((node_id + "[", node_id + "::"))


def load_render() -> ModuleType:
    # threat-model/ is a folder of data and one script, not a package (its name has a hyphen).
    spec = importlib.util.spec_from_file_location(
        "pingcalc_threat_render", REPO / "threat-model" / "render.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measured_env(env: dict[str, str]) -> dict[str, str]:
    """`env` plus the variables that let a Python child measure itself for the reach check.

    For tests that start a process with a deliberately minimal environment."""
    return {**env, **{k: os.environ[k] for k in CHILD_VARS if k in os.environ}}


# --- reach: what each test executed and used ---------------------------------------------


class Reach:
    """Per run: coverage contexts per test or shared fixture, and the configuration files
    each of them used. Labels are short (`t12`, `f3`) because subprocesses carry them in
    their environment; `describe` maps them back."""

    def __init__(self, root: Path, config_entries: Iterable[str]) -> None:
        self.root = root
        self.error: str | None = None
        self.current = ""
        self.describe: dict[str, str] = {}
        self.item_labels: dict[str, set[str]] = defaultdict(set)
        self.uses: dict[str, set[str]] = defaultdict(set)
        self._active: dict[int, tuple[str, str, str]] = {}  # id(fixturedef) -> name, base, label
        self._modules: dict[str, str] = {}  # test module node id -> label of its import
        self._files: dict[str, str] = {}
        self._dirs: list[tuple[str, str]] = []
        for entry in config_entries:
            path = os.path.normpath(os.path.realpath(root / entry))
            if os.path.isdir(path):
                self._dirs.append((path + os.sep, entry))
            self._files[path] = entry
        self._cov: Any = None
        self._dir: Path | None = None
        self._saved_env: dict[str, str | None] = {}
        self._listening = False
        self._real: tuple[Any, Any] | None = None
        self.seconds = 0.0

    # lifecycle

    def start(self) -> None:
        started = time.perf_counter()
        try:
            import coverage
        except ImportError:
            self.error = "coverage.py is not installed (pip install -e '.[dev]')"
            return
        auto = getattr(coverage.process_startup, "coverage", None)
        if coverage.Coverage.current() is auto and auto is not None:
            # This pytest is itself a process an outer measured run started (a test of the
            # suite): the outer run's start-up measurement steps aside for this run's own.
            with _quiet():
                auto.stop()
        if coverage.Coverage.current() is not None:
            self.error = "coverage.py is already measuring this process"
            return
        if not _subprocess_hook_installed():
            self.error = "coverage.py's .pth hook is missing, so servers cannot measure themselves"
            return
        self._dir = Path(tempfile.mkdtemp(prefix="pingcalc-reach-"))
        child = {
            "COVERAGE_PROCESS_START": str(COVERAGE_CONFIG),
            DATA_VAR: str(self._dir / "cov"),
            CONTEXT_VAR: "",
        }
        self._saved_env = {k: os.environ.get(k) for k in child}
        os.environ.update(child)
        with _quiet():
            self._cov = coverage.Coverage(
                config_file=str(COVERAGE_CONFIG), data_file=str(self._dir / "cov")
            )
            self._cov.start()
        self._watch()
        self._listening = True
        self.seconds += time.perf_counter() - started

    def finish(self) -> Any:
        """Stop measuring; the combined coverage data of every process (None if unmeasured)."""
        self._listening = False
        self._unwatch()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._cov is None or self._dir is None:
            return None
        started = time.perf_counter()
        from coverage import CoverageData
        from coverage.data import combine_parallel_data

        try:
            with _quiet():
                self._cov.stop()
                self._cov.save()
                data = CoverageData(basename=str(self._dir / "cov"))
                combine_parallel_data(data, data_paths=[str(self._dir)])
                data.read()
            return data
        finally:
            self.seconds += time.perf_counter() - started

    def cleanup(self) -> None:
        """Remove the data files (after the verdict: the report reads them lazily)."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    # labels

    def enter(self, label: str) -> str:
        """Attribute from now on what runs here, and in processes started now, to `label`."""
        previous, self.current = self.current, label
        if self._cov is not None:
            with _quiet():
                self._cov.switch_context(label)
            os.environ[CONTEXT_VAR] = label
        return previous

    @contextlib.contextmanager
    def labelled(self, label: str) -> Iterator[None]:
        """Attribute what runs inside the block to `label`, then to the label before it."""
        previous = self.enter(label)
        try:
            yield
        finally:
            self.enter(previous)

    def item_started(self, nodeid: str) -> str:
        label = f"t{len(self.describe)}"
        self.describe[label] = nodeid
        self.item_labels[nodeid].add(label)
        return label

    def module_started(self, nodeid: str) -> str:
        label = f"m{len(self.describe)}"
        self.describe[label] = f"import of {nodeid}"
        self._modules[nodeid] = label
        return label

    def fixture_started(self, fixturedef: Any, request: Any) -> str:
        label = f"f{len(self.describe)}"
        self.describe[label] = f"fixture {fixturedef.argname} of {request.node.nodeid or 'session'}"
        self._active[id(fixturedef)] = (fixturedef.argname, fixturedef.baseid, label)
        return label

    def fixture_finished(self, fixturedef: Any) -> None:
        self._active.pop(id(fixturedef), None)

    def credit_shared(self, item: pytest.Item) -> None:
        """What `item`'s module did when it was imported (module-level data the tests assert
        on) and what the shared fixtures it uses did: it counts for `item` too."""
        module = item.getparent(pytest.Module)
        if module is not None and module.nodeid in self._modules:
            self.item_labels[item.nodeid].add(self._modules[module.nodeid])
        names = set(getattr(item, "fixturenames", ()))
        for argname, baseid, label in self._active.values():
            if argname in names and item.nodeid.startswith(baseid):
                self.item_labels[item.nodeid].add(label)

    # configuration use

    def record_use(self, entry: str) -> None:
        if self.current:
            self.uses[self.current].add(entry)

    def _watched(self, path: str) -> str | None:
        entry = self._files.get(path)
        if entry is None:
            for prefix, dir_entry in self._dirs:
                if path.startswith(prefix):
                    return dir_entry
        return entry

    def _path(self, raw: Any, cwd: Any = None) -> str | None:
        try:
            text = os.fsdecode(os.fspath(raw))
        except TypeError:
            return None
        if not os.path.isabs(text):
            text = os.path.join(os.fsdecode(cwd) if cwd else os.getcwd(), text)
        return os.path.normpath(text)

    def opened(self, path: Any, mode: Any) -> None:
        """`open(path, mode)` is being called in this process."""
        if not self._listening or not self.current or isinstance(path, int):
            return
        if isinstance(mode, str) and not ("r" in mode or "+" in mode):
            return  # writing a file is not reading it
        normal = self._path(path)
        entry = self._watched(normal) if normal else None
        if entry is not None and not _copying():
            self.uses[self.current].add(entry)

    def spawned(self, argv: Any, cwd: Any) -> None:
        """A process is being started with `argv` in `cwd`: repository files among its
        arguments are handed to it (`--file=PATH` too)."""
        if not self._listening or not self.current:
            return
        tokens = [argv] if isinstance(argv, str | bytes | os.PathLike) else list(argv or ())
        for token in tokens:
            if isinstance(token, str) and "=" in token and token.startswith("-"):
                token = token.partition("=")[2]
            normal = self._path(token, cwd)
            entry = self._watched(normal) if normal else None
            if entry is not None:
                self.uses[self.current].add(entry)

    def _watch(self) -> None:
        """Wrap `open` and `subprocess.Popen` for the run (undone by `_unwatch`).

        Not an audit hook (`sys.addaudithook`): a Python hook also runs inside every
        `sys.settrace` call, which coverage makes in each new thread, and on CPython 3.11 a
        thread switch in there makes a concurrent thread's `sys.settrace` fail ("Cannot install
        a trace function while another trace function is being installed")."""
        reach = self
        real_open, real_init = io.open, subprocess.Popen.__init__

        @functools.wraps(real_open)
        def watched_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            reach.opened(file, mode)
            return real_open(file, mode, *args, **kwargs)

        @functools.wraps(real_init)
        def watched_init(popen: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
            reach.spawned(args, kwargs.get("cwd"))
            real_init(popen, args, *rest, **kwargs)

        self._real = (real_open, real_init)
        builtins.open = io.open = watched_open
        subprocess.Popen.__init__ = watched_init  # type: ignore[method-assign, assignment]

    def _unwatch(self) -> None:
        if self._real is not None:
            real_open, real_init = self._real
            builtins.open = io.open = real_open
            subprocess.Popen.__init__ = real_init  # type: ignore[method-assign]
            self._real = None


def _subprocess_hook_installed() -> bool:
    """Whether Python processes started from here run coverage's start-up hook (a .pth file
    in site-packages that calls `coverage.process_startup`)."""
    for directory in {*site.getsitepackages(), site.getusersitepackages()}:
        for pth in Path(directory).glob("*.pth"):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if "process_startup" in pth.read_text(encoding="utf-8"):
                    return True
    return False


def _copying() -> bool:
    """Whether the file is being opened by shutil to copy it (a copy is not a use)."""
    frame: FrameType | None = sys._getframe(3)  # _copying <- opened <- watched_open <- caller
    for _ in range(6):
        if frame is None:
            return False
        if frame.f_code.co_filename == _SHUTIL and frame.f_code.co_name in _COPIERS:
            return True
        frame = frame.f_back
    return False


class _quiet(warnings.catch_warnings):
    """coverage.py's warnings are about measurement, never about the code under test; the
    suite turns warnings into errors, so they are silenced around every coverage call."""

    def __enter__(self) -> None:
        super().__enter__()
        warnings.simplefilter("ignore")


@dataclass
class ReachReport:
    """The measured reach, asked per threat: which entries its tests did not reach."""

    render: ModuleType
    data: Any
    reach: Reach
    _code: dict[str, set[str] | str] = field(default_factory=dict)

    def _executed_by(self, entry: str) -> set[str] | str:
        """Labels that ran a body line of `entry`, or why the entry cannot be resolved."""
        if entry not in self._code:
            try:
                target = self.render.resolve_code(entry)
            except self.render.EntryError as exc:
                self._code[entry] = f"{exc}"
                return self._code[entry]
            path = os.path.realpath(REPO / target.path)
            by_line = self.data.contexts_by_lineno(path) if self.data is not None else {}
            labels: set[str] = set()
            for line in target.lines:
                labels.update(by_line.get(line, ()))
            self._code[entry] = labels
        return self._code[entry]

    def unreached(self, threat: dict[str, Any], items: list[str]) -> list[str]:
        labels = set().union(*(self.reach.item_labels.get(item, set()) for item in items))
        used = set().union(*(self.reach.uses.get(label, set()) for label in labels))
        reasons = []
        for entry in map(str, threat.get("implemented_by") or []):
            if self.render.is_code_entry(entry):
                executed = self._executed_by(entry)
                if isinstance(executed, str):
                    reasons.append(f"implemented_by {executed}")
                elif not executed & labels:
                    reasons.append(f"{entry} is never executed by its verified_by tests")
            elif entry not in used:
                reasons.append(f"{entry} is never read or handed over by its verified_by tests")
        if reasons:
            reasons.append("tests: " + ", ".join(sorted(items)))
        return reasons


@dataclass
class ThreatLedger:
    """Per-run bookkeeping: selected items, outcomes, and the verdict per threat."""

    threats: list[dict[str, Any]]
    selected: list[str] = field(default_factory=list)
    deselected: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)
    full_run: bool = False
    unverified: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    reach_checked: bool = False

    def record(self, report: pytest.TestReport) -> None:
        """Keep the worst outcome of a test across setup, call and teardown."""
        nodeid = report.nodeid
        if report.failed:
            self.outcomes[nodeid] = "failed"
        elif report.skipped:
            # xfail is reported as skipped with `wasxfail`: it did not prove anything either.
            if self.outcomes.get(nodeid) != "failed":
                self.outcomes[nodeid] = "skipped"
        elif report.when == "call" and nodeid not in self.outcomes:
            self.outcomes[nodeid] = "passed"

    def judge(self, reach: ReachReport | None = None, reach_error: str | None = None) -> None:
        """Decide, per threat, verified / unverified (why) / not run in this selection.

        With `reach`, a threat whose tests all passed must also have reached every entry of
        its `implemented_by`; without it (`reach_error` says why), enforcement counts such
        threats as unverified.
        """
        selected = set(self.selected)
        self.reach_checked = reach is not None
        for threat in self.threats:
            tid = str(threat["id"])
            reasons: list[str] = []
            not_selected = False
            ran: list[str] = []
            for node_id in threat.get("verified_by") or []:
                items = [item for item in selected if _matches(node_id, item)]
                if not items:
                    if self.full_run:
                        self.missing.append(f"{tid}: {node_id}")
                        reasons.append(f"{node_id} does not exist")
                    else:
                        not_selected = True
                    continue
                for item in sorted(items):
                    outcome = self.outcomes.get(item, "not run")
                    if outcome != "passed":
                        reasons.append(f"{item} {outcome}")
                ran += items
            if not threat.get("verified_by"):
                reasons.append("no verified_by")
            if not reasons and not not_selected and threat.get("implemented_by"):
                if reach is not None:
                    reasons += reach.unreached(threat, ran)
                elif STRICT:
                    reasons.append(f"its implementation's reach was not measured ({reach_error})")
            if reasons:
                self.unverified[tid] = "; ".join(reasons)
            elif not_selected:
                self.not_run.append(tid)
            else:
                self.verified.append(tid)

    @property
    def must_fail(self) -> bool:
        return STRICT and self.full_run and bool(self.unverified or self.missing)


class ThreatPlugin:
    """The hooks, registered once per run with their own ledger (no module-level state)."""

    def __init__(self, config: pytest.Config, ledger: ThreatLedger, reach: Reach | None) -> None:
        self.config = config
        self.ledger = ledger
        self.reach = reach

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.ledger.deselected += len(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        ledger = self.ledger
        ledger.selected = [item.nodeid for item in session.items]
        option = self.config.option
        ledger.full_run = FORCE_FULL or (
            _whole_suite_requested(self.config)
            and ledger.deselected == 0
            and not getattr(option, "keyword", "")
            and not getattr(option, "markexpr", "")
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Iterator[Any]:
        # Importing a test module may read files and run code to build its test data.
        if self.reach is None or not isinstance(collector, pytest.Module):
            return (yield)
        with self.reach.labelled(self.reach.module_started(collector.nodeid)):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[Any]:
        if self.reach is None:
            return (yield)
        with self.reach.labelled(self.reach.item_started(item.nodeid)):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        try:
            return (yield)
        finally:
            if self.reach is not None:
                self.reach.credit_shared(item)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Iterator[Any]:
        # A function-scoped fixture belongs to its test: its work is labelled with the test.
        if self.reach is None or fixturedef.scope == "function":
            return (yield)
        with self.reach.labelled(self.reach.fixture_started(fixturedef, request)):
            return (yield)

    def pytest_fixture_post_finalizer(self, fixturedef: Any) -> None:
        if self.reach is not None:
            self.reach.fixture_finished(fixturedef)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.ledger.record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        try:
            data = self.reach.finish() if self.reach is not None else None
            if self.config.option.collectonly:
                return
            if self.reach is not None and self.reach.error is None:
                started = time.perf_counter()
                self.ledger.judge(ReachReport(load_render(), data, self.reach))
                self.reach.seconds += time.perf_counter() - started
            else:
                error = self.reach.error if self.reach else "PINGCALC_THREATS_REACH=0"
                self.ledger.judge(None, error)
        finally:
            if self.reach is not None:
                self.reach.cleanup()
        if self.ledger.must_fail and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        ledger = self.ledger
        if self.config.option.collectonly:
            return
        total = len(ledger.threats)
        if ledger.unverified:
            terminalreporter.section("unverified threats", red=ledger.must_fail, yellow=True)
            for tid, why in ledger.unverified.items():
                terminalreporter.line(f"{tid} unverified: {why}")
        scope = "full run" if ledger.full_run else f"partial run, {len(ledger.not_run)} not run"
        enforcement = "enforced" if STRICT else "report only"
        if ledger.reach_checked and self.reach is not None:
            reach = f"reach checked in {self.reach.seconds:.1f}s"
        else:
            reach = "reach not checked"
        terminalreporter.write_line(
            f"threats verified: {len(ledger.verified)}/{total} ({scope}; {enforcement}; {reach})",
            bold=True,
            green=len(ledger.verified) == total,
            red=ledger.must_fail,
        )


def _whole_suite_requested(config: pytest.Config) -> bool:
    """No path given (pytest used `testpaths`), or only paths that are the testpaths or root."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return True
    root = config.rootpath
    whole = {(root / p).resolve() for p in config.getini("testpaths")} | {root}
    given = {(config.invocation_params.dir / a.split("::")[0]).resolve() for a in config.args}
    return given <= whole and not any("::" in a for a in config.args)


@pytest.fixture(scope="session")
def uses_configuration(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record that the running test or fixture hands these repository files to a tool that
    the pytest process cannot watch (the engine builds the image from copies of them)."""
    plugin = request.config.pluginmanager.get_plugin("pingcalc_threats")
    root = request.config.rootpath

    def record(*entries: str) -> None:
        for entry in entries:
            if not (root / entry).exists():
                raise FileNotFoundError(f"uses_configuration: no {entry} in {root}")
            if plugin is not None and plugin.reach is not None:
                plugin.reach.record_use(entry)

    return record


def pytest_configure(config: pytest.Config) -> None:
    data = yaml.safe_load(THREATS_FILE.read_text(encoding="utf-8"))
    threats = list(data.get("threats", []))
    ledger = ThreatLedger(threats=threats)
    reach = None
    if MEASURE and not config.option.collectonly:
        render = load_render()
        config_entries = {
            str(entry)
            for threat in threats
            for entry in threat.get("implemented_by") or []
            if not render.is_code_entry(str(entry))
        }
        reach = Reach(config.rootpath, config_entries)
        reach.start()
    config.pluginmanager.register(ThreatPlugin(config, ledger, reach), "pingcalc_threats")
