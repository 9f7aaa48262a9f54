"""The benchmark harness (`make bench`) keeps working: a quick section runs, the report renders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _fake_results(http_ratio: float, healthz_p99: float) -> dict[str, Any]:
    """A results document shaped like `python -m bench` writes, with chosen figures."""
    cell = {"requests_per_second": 1000.0, "p50_ms": 1.0, "p99_ms": 2.0,
            "server_cpu_us_per_request": 300.0}  # fmt: skip
    return {
        "generated_at": "2025-01-01T00:00:00+00:00",
        "quick": True,
        "wall_seconds": 1,
        "machine": {"cpu_model": "Test CPU", "cores": 2, "packages": {"fastapi": "0"}},
        "sections": {
            "http": {
                "load_generator": "wrk",
                "server_core": 0,
                "expression": "1+1",
                "medians": {"bare": {"calculate": cell}, "pingcalc": {"calculate": cell}},
                "ratio_vs_bare": {"pingcalc": {"calculate_rps": http_ratio, "calculate_cpu": 1}},
                "security_cost_percent": round(100 * (1 - http_ratio), 1),
            },
            "abuse": {
                "attackers": 200,
                "abuse_seconds": 1,
                "ping_backend": "fake",
                "summary": {
                    phase: {
                        "healthz": {"p50_ms": 1, "p99_ms": healthz_p99, "max_ms": healthz_p99},
                        "calculate": {"p50_ms": 1, "p99_ms": 5, "max_ms": 5},
                    }
                    for phase in ("idle", "abuse")
                },
                "ratio_abuse_over_idle_p99": {"healthz": 1.0, "calculate": 1.0},
                "abuser_requests_per_second": 10.0,
                "abuser_statuses_total": {"429": 10},
                "legitimate_calculations_refused": 0,
                "meets_healthz_target": healthz_p99 < 50,
                "meets_calculate_target": True,
            },
            "container": {"benchmark": "container", "skipped": "no docker engine"},
        },
    }


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(REPO))
    from bench import report

    return report


def test_report_marks_each_target_met_or_missed_from_the_figures(report: Any) -> None:
    """A missed target is reported as missed, with its note; a met one as met (no silent pass)."""
    missed = report.render(_fake_results(http_ratio=0.5, healthz_p99=80.0))
    assert "| 50.0 % (0.5x bare) | **missed** |" in missed
    assert "| 80.0 ms | **missed** |" in missed
    assert "Missed, http:" in missed
    met = report.render(_fake_results(http_ratio=0.9, healthz_p99=10.0))
    assert "| 10.0 % (0.9x bare) | met |" in met
    assert "Missed, http:" not in met
    assert "Skipped: no docker engine." in met
    assert "| CPU | Test CPU |" in met


def test_quick_evaluator_section_writes_results_and_report(tmp_path: Path) -> None:
    """`python -m bench --quick --only evaluator` measures every engine and renders the page."""
    results, doc = tmp_path / "results.json", tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "evaluator",
         "--results", str(results), "--doc", str(doc)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    evaluator = json.loads(results.read_text())["sections"]["evaluator"]
    rates = evaluator["evaluations_per_second"]
    assert set(rates) >= {
        "pingcalc Evaluator (server), fresh",
        "pingcalc Evaluator (server), repeated",
        "simpleeval, fresh",
        "eval(compile()), fresh",
        "eval(precompiled code), repeated",
    }
    assert all(rate > 0 for rate in rates.values())
    assert evaluator["worst_case"]["expressions"] > 0 and evaluator["worst_case"]["worst_ms"] > 0
    page = doc.read_text()
    assert "## 1. Evaluator" in page
    assert "server evaluator, fresh expressions >= 1.5x simpleeval" in page
    assert "every expression up to the length limit < 2 ms of engine time" in page
