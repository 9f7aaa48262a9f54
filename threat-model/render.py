"""Render THREAT_MODEL.md from threat-model/threats.yaml, or check that it is up to date.

    .venv/bin/python threat-model/render.py           # write THREAT_MODEL.md
    .venv/bin/python threat-model/render.py --check   # exit 1 if THREAT_MODEL.md is stale

The document has the shape of the two source threat models (STRIDE table, ATT&CK mapping,
controls mapping, risk summary) plus "Implemented by" and "Verified by" columns, a table
tracing every seed row to our threats, and one section per threat. `validate()` is the schema
check shared with the tests and the pytest plugin; `seed_rows()` and `seed_references()` parse
the seed documents' tables so a test can prove every row, and every NIST, ATT&CK and STRIDE
reference in it, is carried by a threat that cites the row.

`implemented_by` names what enforces each threat's controls: code as `module.path:QualName`
(importable; `<locals>` reaches a closure, e.g. `pingcalc.api.deps:require.<locals>.dependency`)
and configuration as repository paths. `resolve_code()` imports the module, finds the body
and its lines; the links in THREAT_MODEL.md (`path#Lstart-Lend`) come from there, so moving or
renaming the code makes `--check` fail until the entry is updated and the file re-rendered.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import CodeType
from typing import Any, NamedTuple

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
    "implemented_by",
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
# A NIST SP 800-53 control id, with an optional enhancement: SI-10, IA-5(7).
NIST_ID = re.compile(r"\b[A-Z]{2}-\d{1,2}(?:\(\d{1,2}\))?")
# `module.path:QualName`, the qualname possibly reaching into a closure through `<locals>`.
CODE_ENTRY = re.compile(
    r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<qualname>(?:[A-Za-z_]\w*|<locals>)"
    r"(?:\.(?:[A-Za-z_]\w*|<locals>))*)"
)
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


def _seed_table(name: str, text: str) -> Iterator[tuple[str, str, list[str]]]:
    """(row key, section, cells) for every table row of a seed document."""
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
            yield f"{name}#attack/{match.group()}", section, cells
        else:
            yield f"{name}#{section}/{_plain(cells[0])}", section, cells


def seed_rows(name: str, text: str) -> list[str]:
    """Keys of every table row of a seed document: `name#section/first-column`.

    For ATT&CK rows the key is the technique id (column 2 in both seeds), since the tactic
    column repeats and the names differ between the documents.
    """
    return [key for key, _, _ in _seed_table(name, text)]


def seed_references(name: str, text: str) -> dict[str, list[str]]:
    """Row key -> the NIST, ATT&CK and STRIDE references the row names, e.g. `NIST:SI-3`.

    Every cell is searched for NIST 800-53 ids and ATT&CK technique ids; a STRIDE row names
    its category in the first column.
    """
    found: dict[str, list[str]] = {}
    for key, section, cells in _seed_table(name, text):
        refs: list[str] = []
        if section == "stride" and _plain(cells[0]) in STRIDE:
            refs.append(f"STRIDE:{_plain(cells[0])}")
        for cell in cells:
            refs += [f"ATT&CK:{t}" for t in TECHNIQUE_ID.findall(cell)]
            refs += [f"NIST:{c}" for c in NIST_ID.findall(cell)]
        found[key] = list(dict.fromkeys(refs))
    return found


def all_seed_rows(data: dict[str, Any]) -> list[str]:
    """Every row key of every seed named in the threats file."""
    keys: list[str] = []
    for name, rel in data["seeds"].items():
        keys.extend(seed_rows(name, (REPO / rel).read_text(encoding="utf-8")))
    return keys


def all_seed_references(data: dict[str, Any]) -> dict[str, list[str]]:
    """Row key -> references, for every seed named in the threats file."""
    refs: dict[str, list[str]] = {}
    for name, rel in data["seeds"].items():
        refs.update(seed_references(name, (REPO / rel).read_text(encoding="utf-8")))
    return refs


def threat_references(threat: dict[str, Any]) -> set[str]:
    """The NIST, ATT&CK and STRIDE references a threat carries, in the seed-reference form."""
    refs = {f"STRIDE:{category}" for category in threat.get("stride", [])}
    refs |= {f"ATT&CK:{technique}" for technique in threat.get("attack", [])}
    for control in threat.get("controls", []):
        if str(control).startswith("NIST"):
            refs |= {f"NIST:{c}" for c in NIST_ID.findall(str(control))}
    return refs


def _carries(refs: set[str], wanted: str) -> bool:
    """A sub-technique (T1059.006) carries its technique (T1059), an enhancement (IA-5(7))
    its control (IA-5): both are the more specific form of the reference."""
    return wanted in refs or any(ref.startswith((wanted + ".", wanted + "(")) for ref in refs)


def missing_seed_references(data: dict[str, Any]) -> list[str]:
    """Each seed reference that no threat citing its row carries, one message each.

    `seed_corrections` may replace a reference the seed gets wrong (with its reason): the
    replacements are then what the citing threats must carry.
    """
    corrections = {
        (c["row"], c["reference"]): list(c["read_as"]) for c in data.get("seed_corrections", [])
    }
    problems: list[str] = []
    for row, refs in all_seed_references(data).items():
        citing = [t for t in data["threats"] if row in t.get("sources", [])]
        carried = set().union(*(threat_references(t) for t in citing)) if citing else set()
        names = ", ".join(str(t["id"]) for t in citing) or "no threat"
        for ref in refs:
            kind, _, ident = ref.partition(":")
            for wanted in corrections.get((row, ident), [ident]):
                if not _carries(carried, f"{kind}:{wanted}"):
                    fixed = f" (the seed's {ident}, corrected)" if wanted != ident else ""
                    shown = f"{kind} {wanted}{fixed}"
                    problems.append(f"{row}: {shown} is in no threat citing the row ({names})")
    for correction in data.get("seed_corrections", []):
        refs = all_seed_references(data).get(correction["row"], [])
        if not any(r.endswith(":" + correction["reference"]) for r in refs):
            problems.append(
                f"seed_corrections: {correction['row']} does not name {correction['reference']}"
            )
    return problems


# --- implemented_by ------------------------------------------------------------------------


class EntryError(ValueError):
    """An `implemented_by` entry that names nothing real; the message says which and why."""


class CodeTarget(NamedTuple):
    """Where one code entry lives and which of its lines only a call executes."""

    entry: str
    path: str  # relative to the repository root
    start: int
    end: int
    lines: frozenset[int]  # body lines; never run by importing the module

    @property
    def link(self) -> str:
        return f"{self.path}#L{self.start}-L{self.end}"


def is_code_entry(entry: str) -> bool:
    """Code entries are `module:QualName`; anything else is a repository path."""
    return ":" in entry


def _code_objects(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _code_objects(const)


def _is_function(code: CodeType) -> bool:
    # Module and class bodies run at import; only function bodies wait for a call.
    return bool(code.co_flags & inspect.CO_OPTIMIZED)


def _lines(code: CodeType) -> set[int]:
    return {line for _, _, line in code.co_lines() if line is not None}


def resolve_code(entry: str, root: Path = REPO) -> CodeTarget:
    """Import the entry's module, find its function or class, and the lines of its body.

    Raises EntryError naming the entry when the module does not import, the qualname does
    not exist, names no function or class, or the source is outside `root`.
    """
    match = CODE_ENTRY.fullmatch(entry)
    if match is None:
        raise EntryError(f"{entry!r} is not `module.path:QualName`")
    module_name, qualname = match["module"], match["qualname"]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure makes the entry stale
        raise EntryError(
            f"{entry}: module {module_name} does not import ({type(exc).__name__}: {exc})"
        ) from None
    # The importable prefix of the qualname (up to a `<locals>`), as an object when it is
    # one; pydantic, for one, consumes its validators, which then exist only as code.
    obj: Any = module
    missing: str | None = None
    parts = qualname.split(".")
    for index, part in enumerate(parts):
        if part == "<locals>":
            break
        try:
            obj = inspect.getattr_static(obj, part)
        except AttributeError:
            missing = ".".join(parts[: index + 1])
            break
    source = inspect.getsourcefile(module)
    try:
        path = Path(source or "").resolve().relative_to(root.resolve())
    except ValueError:
        raise EntryError(f"{entry}: {source} is not in this repository ({root})") from None
    spec = importlib.util.find_spec(module_name)
    module_code = spec.loader.get_code(module_name) if spec and spec.loader else None  # type: ignore[attr-defined]
    if module_code is None:
        raise EntryError(f"{entry}: no code for module {module_name}")
    every = list(_code_objects(module_code))
    found = next((c for c in every if c.co_qualname == qualname), None)
    home = getattr(obj, "__module__", module_name)
    if found is None and missing is not None:
        raise EntryError(f"{entry}: {module_name} has no attribute {missing}")
    if found is None and isinstance(home, str) and home != module_name:
        raise EntryError(f"{entry}: {qualname} is defined in {home}; name it there")
    if found is None:
        raise EntryError(
            f"{entry}: {qualname} is not a function or class in {path} (name the code that "
            "enforces the control, not a constant)"
        )
    # Lines that run without a call: module and class bodies (def, decorators, class
    # attributes) and each function's own first line (its `def`, run when the enclosing
    # function defines it, as for a closure).
    definitions = set().union(*(_lines(c) for c in every if not _is_function(c)))
    functions = [c for c in _code_objects(found) if _is_function(c)]
    body = set().union(*(_lines(c) - {c.co_firstlineno} for c in functions))
    lines = frozenset(body - definitions)
    if not lines:
        raise EntryError(f"{entry}: {qualname} has no body that a call runs (no methods?)")
    # A function's code object leads inspect to its decorators and body; a class body's
    # does not (inspect looks for `def`), so a class is found by its own object.
    source_of = obj if not _is_function(found) and inspect.isclass(obj) else found
    block, start = inspect.getsourcelines(source_of)
    return CodeTarget(entry, path.as_posix(), start, start + len(block) - 1, lines)


def entry_errors(threat: dict[str, Any], root: Path = REPO) -> list[str]:
    """Each `implemented_by` entry of `threat` that does not resolve, one message each."""
    errors: list[str] = []
    for entry in threat.get("implemented_by") or []:
        entry = str(entry)
        if is_code_entry(entry):
            try:
                resolve_code(entry, root)
            except EntryError as exc:
                errors.append(str(exc))
        elif entry.startswith("/") or ".." in Path(entry).parts:
            errors.append(f"{entry}: a configuration entry is a path inside the repository")
        elif not (root / entry).exists():
            errors.append(f"{entry}: no such file in the repository")
    return errors


# --- validation ----------------------------------------------------------------------------


def validate(data: dict[str, Any], root: Path = REPO) -> list[str]:
    """Every schema problem of the threats file, one message each (empty when valid).

    This includes every `implemented_by` entry that does not import, names no function or
    class, or names a path that does not exist: a stale entry is named here.
    """
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
        if not threat["implemented_by"]:
            errors.append(f"{tid}: implemented_by is empty")
        errors += [f"{tid}: implemented_by {error}" for error in entry_errors(threat, root)]
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


def _implemented(threat: dict[str, Any]) -> list[str]:
    """Each `implemented_by` entry as a markdown link: code to its lines, paths to the file."""
    links = []
    for entry in threat["implemented_by"]:
        target = resolve_code(entry).link if is_code_entry(entry) else entry
        links.append(f"[`{entry}`]({target})")
    return links


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
        "controls, the code and configuration that implement them (linked to their lines),",
        "and the tests that prove them: a pytest plugin (`tests/threat_plugin.py`) prints",
        "`threats verified: N/M` at the end of `make test`, and in CI a full run fails when any",
        "verifying test failed, was skipped or does not exist, or when a threat's tests never",
        "executed one of its code entries (measured with coverage.py, in the test process and",
        "in the servers it starts) or never read or handed over one of its configuration files.",
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
        [
            "ID",
            "Issue",
            "Control (what we do, where)",
            "Framework Reference",
            "Implemented by",
            "Verified by",
        ],
        (
            [
                _link(t),
                t["title"],
                t["mitigation"],
                "<br>".join(t["controls"]),
                "<br>".join(_implemented(t)),
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
    out += [
        f"- `{c['row']}`: the seed's {c['reference']} is read as {', '.join(c['read_as'])}: "
        f"{_cell(c['why'])}"
        for c in data.get("seed_corrections", [])
    ]
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
        out.append("- **Implemented by:**")
        out += [f"  - {link}" for link in _implemented(threat)]
        if threat.get("implementation_note"):
            out.append(f"- **How the tests reach it:** {_cell(threat['implementation_note'])}")
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
