"""Render THREAT_MODEL.md from threat-model/threats.yaml, or check that it is up to date.

    .venv/bin/python threat-model/render.py           # write THREAT_MODEL.md
    .venv/bin/python threat-model/render.py --check   # exit 1 if THREAT_MODEL.md is stale

The document has the shape of the two source threat models (STRIDE table, ATT&CK mapping,
controls mapping, risk summary) plus a "Verified by" column, a table tracing every seed row
to our threats, and one section per threat. `validate()` is the schema check shared with the
tests; `seed_rows()` parses the seed documents' tables so a test can prove every row is covered.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
THREATS_FILE = HERE / "threats.yaml"
OUTPUT_FILE = REPO / "THREAT_MODEL.md"

STRIDE = (
    "Spoofing",
    "Tampering",
    "Repudiation",
    "Information Disclosure",
    "Denial of Service",
    "Elevation of Privilege",
)
# ATT&CK Enterprise tactics in kill-chain order, for sorting the mapping table.
TACTICS = (
    "Reconnaissance",
    "Resource Development",
    "Initial Access",
    "Execution",
    "Persistence",
    "Privilege Escalation",
    "Defense Evasion",
    "Credential Access",
    "Discovery",
    "Lateral Movement",
    "Collection",
    "Command and Control",
    "Exfiltration",
    "Impact",
)
LIKELIHOOD = ("Low", "Medium", "High")
IMPACT = ("Low", "Medium", "High", "Critical")
RISK = ("Low", "Medium", "High")
PRIORITY = ("Low", "Medium", "High", "Immediate")
STATUSES = ("mitigated", "partially mitigated", "accepted")
REQUIRED = (
    "id",
    "title",
    "stride",
    "attack",
    "example",
    "impact_text",
    "controls",
    "likelihood",
    "impact",
    "risk",
    "priority",
    "mitigation",
    "verified_by",
    "status",
    "sources",
)
# Which seed section a heading belongs to, by a word in the heading.
SECTION_WORDS = (
    ("STRIDE", "stride"),
    ("ATT&CK", "attack"),
    ("Control", "controls"),
    ("Risk", "risk"),
)
TECHNIQUE_ID = re.compile(r"T\d{4}(?:\.\d{3})?")
NODE_ID = re.compile(r"tests/[\w/.-]+\.py::[\w\[\]:.-]+")
THREAT_ID = re.compile(r"TM-\d{2}")


def load(path: Path = THREATS_FILE) -> dict[str, Any]:
    """The parsed threats file."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


# --- seeds ---------------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _plain(text: str) -> str:
    """A table cell without markdown emphasis or code marks."""
    return text.replace("**", "").replace("`", "").strip()


def seed_rows(name: str, text: str) -> list[str]:
    """Keys of every table row of a seed document: `name#section/first-column`.

    For ATT&CK rows the key is the technique id (column 2 in both seeds), since the tactic
    column repeats and the names differ between the documents.
    """
    keys: list[str] = []
    section: str | None = None
    header_seen = False
    for line in text.splitlines():
        if line.startswith("#"):
            section = next((key for word, key in SECTION_WORDS if word in line), None)
            header_seen = False
            continue
        if section is None or not line.lstrip().startswith("|"):
            continue
        cells = _cells(line)
        if not header_seen:
            header_seen = True  # the column titles
            continue
        if all(set(cell) <= set("-: ") for cell in cells):
            continue  # the |---|---| separator
        if section == "attack":
            match = TECHNIQUE_ID.search(cells[1])
            if match is None:
                raise ValueError(f"{name}: ATT&CK row without a technique id: {line!r}")
            keys.append(f"{name}#attack/{match.group()}")
        else:
            keys.append(f"{name}#{section}/{_plain(cells[0])}")
    return keys


def all_seed_rows(data: dict[str, Any]) -> list[str]:
    """Every row key of every seed named in the threats file."""
    keys: list[str] = []
    for name, rel in data["seeds"].items():
        keys.extend(seed_rows(name, (REPO / rel).read_text(encoding="utf-8")))
    return keys


# --- validation ----------------------------------------------------------------------------


def validate(data: dict[str, Any]) -> list[str]:
    """Every schema problem of the threats file, one message each (empty when valid)."""
    errors: list[str] = []
    techniques: dict[str, Any] = data.get("techniques", {})
    seen: set[str] = set()
    for index, threat in enumerate(data.get("threats", [])):
        tid = str(threat.get("id", f"#{index}"))
        missing = [key for key in REQUIRED if key not in threat]
        if missing:
            errors.append(f"{tid}: missing {', '.join(missing)}")
            continue
        if not THREAT_ID.fullmatch(tid):
            errors.append(f"{tid}: id must look like TM-01")
        if tid in seen:
            errors.append(f"{tid}: duplicate id")
        seen.add(tid)
        for category in threat["stride"]:
            if category not in STRIDE:
                errors.append(f"{tid}: unknown STRIDE category {category!r}")
        if not threat["stride"]:
            errors.append(f"{tid}: no STRIDE category")
        for technique in threat["attack"]:
            if technique not in techniques:
                errors.append(f"{tid}: technique {technique} is not in `techniques`")
        for field, scale in (
            ("likelihood", LIKELIHOOD),
            ("impact", IMPACT),
            ("risk", RISK),
            ("priority", PRIORITY),
            ("status", STATUSES),
        ):
            if threat[field] not in scale:
                errors.append(f"{tid}: {field} {threat[field]!r} is not one of {', '.join(scale)}")
        if not threat["controls"]:
            errors.append(f"{tid}: no control reference")
        if not threat["verified_by"]:
            errors.append(f"{tid}: verified_by is empty")
        for node_id in threat["verified_by"]:
            if not NODE_ID.fullmatch(node_id):
                errors.append(f"{tid}: {node_id!r} is not a pytest node id under tests/")
        if threat["status"] == "partially mitigated" and not threat.get("residual"):
            errors.append(f"{tid}: partially mitigated needs `residual` (the risk that remains)")
        if threat["status"] == "accepted" and not threat.get("reason"):
            errors.append(f"{tid}: accepted needs `reason`")
    for technique, info in techniques.items():
        if not TECHNIQUE_ID.fullmatch(technique):
            errors.append(f"technique {technique}: not an ATT&CK technique id")
        if info.get("tactic") not in TACTICS:
            errors.append(f"technique {technique}: unknown tactic {info.get('tactic')!r}")
    return errors


# --- rendering -----------------------------------------------------------------------------


def _cell(text: Any) -> str:
    """One markdown table cell: a single line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _ids(node_ids: Iterable[str]) -> str:
    return "<br>".join(f"`{node_id}`" for node_id in node_ids)


def _link(threat: dict[str, Any]) -> str:
    return f"[{threat['id']}](#{threat['id'].lower()})"


def _status(threat: dict[str, Any]) -> str:
    return str(threat["status"])


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows)
    return lines


def _verified(threat: dict[str, Any]) -> str:
    count = len(threat["verified_by"])
    return f"{_link(threat)}: {count} test{'s' if count != 1 else ''}"


def render(data: dict[str, Any]) -> str:
    """The whole THREAT_MODEL.md for the parsed threats file."""
    threats: list[dict[str, Any]] = data["threats"]
    techniques: dict[str, dict[str, str]] = data["techniques"]
    out: list[str] = [
        "# Threat Model: pingcalc",
        "",
        "<!-- Generated by threat-model/render.py from threat-model/threats.yaml. Do not",
        "     edit: change the YAML and run `make threat-model`. A test fails when stale. -->",
        "",
        "## 1. Overview",
        "",
        "pingcalc is the hardened rewrite of a small web app that ran `ping` through a shell,",
        "`eval()`'d user input, had a hard-coded password, no authentication, no logs, and ran as",
        "root on 0.0.0.0. This model covers every row of the two source threat models",
        "(`threat-model/seeds/`) plus the threats the rewrite adds. Each threat names its",
        "controls, where they live, and the tests that prove them: a pytest plugin",
        "(`tests/threat_plugin.py`)",
        "prints `threats verified: N/M` at the end of `make test`, and in CI a full run fails when",
        "any verifying test failed, was skipped or does not exist.",
        "",
        "Likelihood, impact and risk are inherent (the original app without our controls); the",
        "status says what remains.",
        "",
        f"Threats: {len(threats)}; "
        + ", ".join(
            f"{sum(1 for t in threats if t['status'] == s)} {s}"
            for s in STATUSES
            if any(t["status"] == s for t in threats)
        )
        + ".",
        "",
        "---",
        "",
        "## 2. STRIDE Analysis",
        "",
    ]
    stride_rows = [
        [
            category,
            _link(threat),
            threat["title"],
            threat["example"],
            threat["impact_text"],
            threat["mitigation"],
            _status(threat),
            _ids(threat["verified_by"]),
        ]
        for category in STRIDE
        for threat in threats
        if category in threat["stride"]
    ]
    out += _table(
        [
            "Threat Category",
            "ID",
            "Threat",
            "Example",
            "Impact",
            "Mitigation",
            "Status",
            "Verified by",
        ],
        stride_rows,
    )
    out += ["", "---", "", "## 3. MITRE ATT&CK Mapping", ""]
    used = sorted(
        {tech for threat in threats for tech in threat["attack"]},
        key=lambda t: (TACTICS.index(techniques[t]["tactic"]), t),
    )
    attack_rows = []
    for technique in used:
        related = [t for t in threats if technique in t["attack"]]
        attack_rows.append(
            [
                techniques[technique]["tactic"],
                technique,
                techniques[technique]["name"],
                "; ".join(f"{_link(t)} {t['title']}" for t in related),
                "<br>".join(_verified(t) for t in related),
            ]
        )
    out += _table(
        ["Tactic", "Technique ID", "Technique Name", "Application Relevance", "Verified by"],
        attack_rows,
    )
    out += ["", "---", "", "## 4. Controls Mapping", ""]
    out += _table(
        ["ID", "Issue", "Control (what we do, where)", "Framework Reference", "Verified by"],
        (
            [
                _link(t),
                t["title"],
                t["mitigation"],
                "<br>".join(t["controls"]),
                _ids(t["verified_by"]),
            ]
            for t in threats
        ),
    )
    out += ["", "---", "", "## 5. Risk Rating Summary", ""]
    ranked = sorted(
        threats,
        key=lambda t: (-RISK.index(t["risk"]), -PRIORITY.index(t["priority"]), t["id"]),
    )
    out += _table(
        [
            "ID",
            "Threat",
            "Risk",
            "Likelihood",
            "Impact",
            "Mitigation Priority",
            "Status",
            "Verified by",
        ],
        (
            [
                _link(t),
                t["title"],
                t["risk"],
                t["likelihood"],
                t["impact"],
                t["priority"],
                _status(t),
                _verified(t),
            ]
            for t in ranked
        ),
    )
    out += ["", "---", "", "## 6. Residual and Accepted Risks", ""]
    for threat in threats:
        if threat["status"] == "partially mitigated":
            out.append(f"- {_link(threat)} {threat['title']}: {_cell(threat['residual'])}")
        elif threat["status"] == "accepted":
            out.append(f"- {_link(threat)} {threat['title']} (accepted): {_cell(threat['reason'])}")
    out += ["", "---", "", "## 7. Seed Traceability", ""]
    out += [
        "Every row of the source documents and the threats that cover it.",
        "",
    ]
    covering: dict[str, list[str]] = {}
    for threat in threats:
        for source in threat["sources"]:
            covering.setdefault(source, []).append(_link(threat))
    out += _table(
        ["Seed row", "Threats"],
        (
            [f"`{row}`", ", ".join(covering.get(row, ["**not covered**"]))]
            for row in all_seed_rows(data)
        ),
    )
    out += ["", "Notes on the seeds:", ""]
    out += [f"- {_cell(note)}" for note in data.get("seed_notes", [])]
    out += ["", "---", "", "## 8. Threats in Detail", ""]
    for threat in threats:
        out += [
            f'<a id="{threat["id"].lower()}"></a>',
            f"### {threat['id']}: {threat['title']}",
            "",
        ]
        out.append(f"- **STRIDE:** {', '.join(threat['stride'])}")
        attack = ", ".join(f"{t} {techniques[t]['name']}" for t in threat["attack"]) or "none"
        out.append(f"- **ATT&CK:** {attack}")
        out.append(f"- **Example:** {_cell(threat['example'])}")
        out.append(
            f"- **Risk:** {threat['risk']} (likelihood {threat['likelihood']}, impact "
            f"{threat['impact']}); priority {threat['priority']}"
        )
        out.append(f"- **Controls:** {'; '.join(threat['controls'])}")
        out.append(f"- **Mitigation:** {_cell(threat['mitigation'])}")
        status = threat["status"]
        if status == "partially mitigated":
            status += f". Residual risk: {_cell(threat['residual'])}"
        elif status == "accepted":
            status += f". Reason: {_cell(threat['reason'])}"
        out.append(f"- **Status:** {status}")
        if threat["sources"]:
            out.append(f"- **Seed rows:** {', '.join(f'`{s}`' for s in threat['sources'])}")
        out.append("- **Verified by:**")
        out += [f"  - `{node_id}`" for node_id in threat["verified_by"]]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write THREAT_MODEL.md, or with --check report whether it is stale (exit 1)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT_FILE)
    args = parser.parse_args(argv)
    data = load()
    errors = validate(data)
    if errors:
        for error in errors:
            print(f"threats.yaml: {error}", file=sys.stderr)
        return 2
    text = render(data)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output.name} is out of date with threat-model/threats.yaml; "
                "run `make threat-model`",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(data['threats'])} threats)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
