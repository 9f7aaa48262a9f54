"""pytest plugin: which threats of threat-model/threats.yaml did this run verify?

A threat is verified when every node id in its `verified_by` matched at least one test that
ran, and every matching test passed (a failure, an error in setup or teardown, a skip or an
xfail leaves it unverified). A node id without parameters (`file.py::test_x`) matches all of
its parametrized cases. The plugin prints `threats verified: N/M` in the terminal summary.

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

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

THREATS_FILE = Path(
    os.environ.get(
        "PINGCALC_THREATS_FILE",
        Path(__file__).resolve().parent.parent / "threat-model" / "threats.yaml",
    )
)
IN_CI = os.environ.get("CI", "").lower() == "true"
STRICT = IN_CI or os.environ.get("PINGCALC_THREATS_STRICT") == "1"
FORCE_FULL = os.environ.get("PINGCALC_THREATS_FULL") == "1"


def _matches(node_id: str, item_id: str) -> bool:
    """`file::test` covers `file::test[case]`; `file::Class` covers its methods."""
    return item_id == node_id or item_id.startswith((node_id + "[", node_id + "::"))


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

    def judge(self) -> None:
        """Decide, per threat, verified / unverified (why) / not run in this selection."""
        selected = set(self.selected)
        for threat in self.threats:
            tid = str(threat["id"])
            reasons: list[str] = []
            not_selected = False
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
            if not threat.get("verified_by"):
                reasons.append("no verified_by")
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

    def __init__(self, config: pytest.Config, ledger: ThreatLedger) -> None:
        self.config = config
        self.ledger = ledger

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

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.ledger.record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.config.option.collectonly:
            return
        self.ledger.judge()
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
        terminalreporter.write_line(
            f"threats verified: {len(ledger.verified)}/{total} ({scope}; {enforcement})",
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


def pytest_configure(config: pytest.Config) -> None:
    data = yaml.safe_load(THREATS_FILE.read_text(encoding="utf-8"))
    ledger = ThreatLedger(threats=list(data.get("threats", [])))
    config.pluginmanager.register(ThreatPlugin(config, ledger), "pingcalc_threats")
