"""The release workflow: least privilege, pinned actions, and every supply-chain step present.

The workflow itself only runs on GitHub; these tests hold its structure to the rules in its
header comment, so a later edit cannot quietly drop the scan, the signature or a pin.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
# `uses: owner/repo[/path]@<40 hex> # vX.Y.Z`: a tag or branch can be moved to other code,
# a commit cannot (T1195.002, the trivy-action tag hijack of March 2026).
PINNED_USES = re.compile(
    r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40}\s+#\s+v\d+\.\d+\.\d+\s*$"
)
REQUIRED_JOBS = {"test", "build", "scan", "sign", "attest"}
# Jobs that obtain an OIDC token for Sigstore; no other job may ask for one.
SIGNING_JOBS = {"sign", "attest"}
ALLOWED_WRITE_SCOPES = {"id-token", "packages", "attestations"}


def load_workflow() -> dict[str, Any]:
    """The workflow as data (PyYAML reads the `on:` key as True)."""
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)
    return data


WORKFLOW_DATA = load_workflow()
JOBS: dict[str, Any] = WORKFLOW_DATA["jobs"]


def steps(job: str) -> list[dict[str, Any]]:
    """The steps of one job."""
    result: list[dict[str, Any]] = JOBS[job]["steps"]
    return result


def uses(job: str, action: str) -> list[dict[str, Any]]:
    """Steps of a job that use this action (owner/repo), at any pinned version."""
    return [s for s in steps(job) if s.get("uses", "").split("@")[0] == action]


def runs(job: str) -> str:
    """All shell scripts of a job, joined."""
    return "\n".join(s.get("run", "") for s in steps(job))


def all_steps() -> Iterator[tuple[str, dict[str, Any]]]:
    """(job, step) for every step of the workflow."""
    for name in JOBS:
        for step in steps(name):
            yield name, step


def test_workflow_runs_only_for_release_tags() -> None:
    """No untrusted trigger (pull_request_target, forks) can reach signing (T1195.002)."""
    assert set(WORKFLOW_DATA["on"]) == {"push"}
    trigger = WORKFLOW_DATA["on"]["push"]
    assert set(trigger) == {"tags"}
    assert all(tag.startswith("v") for tag in trigger["tags"])


def test_top_level_permissions_are_empty() -> None:
    """A job gets only the token scopes it names (NIST AC-6, OpenSSF Token-Permissions)."""
    assert WORKFLOW_DATA["permissions"] == {}
    for name, job in JOBS.items():
        assert "permissions" in job, f"{name} must declare its permissions"
        assert isinstance(job["permissions"], dict), f"{name}: no write-all/read-all shorthand"


def test_write_scopes_are_only_the_ones_release_needs() -> None:
    """No job can push code, tags or releases (contents: write) (AC-6, T1195.002)."""
    for name, job in JOBS.items():
        for scope, level in job["permissions"].items():
            assert level in {"read", "write", "none"}, (name, scope)
            if level == "write":
                assert scope in ALLOWED_WRITE_SCOPES, (name, scope)


def test_id_token_only_where_signing_or_attesting_happens() -> None:
    """An OIDC token can sign anything as this repo: only sign and attest may mint one (AC-6)."""
    minting = {n for n, j in JOBS.items() if j["permissions"].get("id-token") == "write"}
    assert minting == SIGNING_JOBS
    for name in minting:
        script = runs(name)
        assert "cosign sign" in script or "cosign attest" in script, name


def test_required_jobs_exist_in_a_gated_order() -> None:
    """Nothing is pushed before the tests pass, nothing signed before the scan passes (SI-7)."""
    assert set(JOBS) >= REQUIRED_JOBS

    def needs(job: str) -> set[str]:
        value = JOBS[job].get("needs", [])
        return {value} if isinstance(value, str) else set(value)

    assert needs("build") == {"test"}
    assert "build" in needs("scan")
    for job in ("sign", "attest"):
        assert {"build", "scan"} <= needs(job), job


def test_test_job_runs_the_ci_script() -> None:
    """The release is built from code that passed the whole suite exactly as CI runs it, with
    every prerequisite installed, so no test is skipped (SA-11)."""
    assert uses("test", "actions/checkout")
    assert re.search(r"^(sudo )?bash \.ci/run$", runs("test"), re.MULTILINE)
    assert "make test" not in runs("test")  # on a bare runner that skipped container tests


def test_build_job_pushes_and_exports_the_digest() -> None:
    """Everything downstream addresses the image by the digest build pushed (T1525, CM-14)."""
    (push,) = uses("build", "docker/build-push-action")
    assert push["with"]["push"] is True
    assert JOBS["build"]["outputs"]["digest"] == f"${{{{ steps.{push['id']}.outputs.digest }}}}"
    assert re.search(r"sha256:\[0-9a-f\]\{64\}", runs("build")), "the digest is checked"


def test_scan_job_fails_on_high_and_critical_vulnerabilities() -> None:
    """A known HIGH/CRITICAL CVE stops the release before signing (T1190, NIST RA-5, SI-2)."""
    (scan,) = uses("scan", "aquasecurity/trivy-action")
    options = scan["with"]
    assert set(options["severity"].split(",")) == {"HIGH", "CRITICAL"}
    assert str(options["exit-code"]) == "1"
    assert options["image-ref"].endswith("@${{ needs.build.outputs.digest }}")


def test_sign_job_signs_the_digest_keyless() -> None:
    """The signature binds this exact digest to the workflow's identity (T1525, SI-7)."""
    assert uses("sign", "sigstore/cosign-installer")
    script = runs("sign")
    assert re.search(r'cosign sign --yes "\$\{IMAGE\}@\$\{DIGEST\}"', script)
    assert "--key" not in script, "keyless: no long-lived signing key to steal (T1552)"


def test_attest_job_attaches_cyclonedx_sbom_and_provenance() -> None:
    """Operators and admission can check what is inside and how it was built (SR-4, SLSA L2)."""
    (sbom,) = uses("attest", "aquasecurity/trivy-action")
    assert sbom["with"]["format"] == "cyclonedx"
    output = sbom["with"]["output"]
    assert re.search(
        rf'cosign attest --yes --type cyclonedx --predicate {re.escape(output)} "\$\{{IMAGE\}}@',
        runs("attest"),
    )
    (provenance,) = uses("attest", "actions/attest-build-provenance")
    assert provenance["with"]["subject-digest"] == "${{ needs.build.outputs.digest }}"
    assert provenance["with"]["push-to-registry"] is True


def test_every_action_is_pinned_by_commit_sha_with_its_tag() -> None:
    """A moved tag cannot swap the code a release runs (T1195.002, trivy-action March 2026)."""
    text = WORKFLOW.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if re.match(r"^\s*(?:-\s+)?uses:", line)]
    assert len(lines) == sum(1 for _, step in all_steps() if "uses" in step) >= 10
    for line in lines:
        assert PINNED_USES.match(line), line


def test_pin_check_rejects_tags_branches_and_short_shas() -> None:
    """The pin rule itself refuses the forms an attacker can move (T1195.002)."""
    good = "      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"
    assert PINNED_USES.match(good)
    for bad in (
        "      - uses: actions/checkout@v4",
        "      - uses: actions/checkout@main",
        "      - uses: actions/checkout@11bd719 # v4.2.2",
        "      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",
    ):
        assert not PINNED_USES.match(bad), bad


def test_no_expression_is_expanded_inside_a_script() -> None:
    """`${{ }}` in run: is pasted into bash before it runs: script injection (T1059.004)."""
    for job, step in all_steps():
        assert "${{" not in step.get("run", ""), f"{job}: {step.get('name')}"


@pytest.mark.parametrize("job", sorted(JOBS))
def test_checkout_does_not_keep_the_token(job: str) -> None:
    """Later steps cannot read a persisted GITHUB_TOKEN from .git/config (T1552.001)."""
    for step in uses(job, "actions/checkout"):
        assert step["with"]["persist-credentials"] is False
