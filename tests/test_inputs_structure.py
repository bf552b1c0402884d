"""The readers are one package behind one registry (issue 13, item 4): every module of
inputs/ imports alone, the imports inside the package form no cycle, no format module imports
another, and no other package keeps a reader of its own."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "inputs"
MODULES = sorted(p.stem for p in INPUTS.glob("*.py") if p.stem != "__init__")
FORMATS = {"yamljson", "csvlabs", "fhir_bundle", "fhir_ndjson"}
DATA = Path(__file__).parent / "data" / "timelines"


def imports_of(path: Path, package: str = "rxwatch.inputs") -> set[str]:
    """The modules of `package` that the module at `path` imports, anywhere in it (a function's
    deferred import counts too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = f"{package}.{node.module}" if node.module else package
            elif node.level == 0 and node.module:
                base = node.module
            else:
                continue
            if base == package:  # `from . import yamlsrc`
                found.update(f"{package}.{a.name}" for a in node.names)
            elif base.startswith(package + "."):
                found.add(base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(package + "."))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            pass  # the registry's import of a reader by name: a use, not a dependency of the registry's own
    return {name.rsplit(".", 1)[1] for name in found if name.count(".") == 2}


def graph() -> dict[str, set[str]]:
    return {m: imports_of(INPUTS / f"{m}.py") for m in MODULES}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of `edges` (as a path that comes back to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert cycle({"a": {"a"}}) == ["a", "a"]


def test_the_import_reader_sees_every_form_of_import(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from . import yamlsrc\nfrom .model import Loc\nimport rxwatch.inputs.reader\n"
                   "def f():\n    from rxwatch.inputs.csvlabs import read\n")
    assert imports_of(src) == {"yamlsrc", "model", "reader", "csvlabs"}


def test_the_package_has_the_modules_of_its_design():
    assert {"model", "reader", "yamlsrc", "registry", "observation"} | FORMATS <= set(MODULES)


def test_no_import_cycle_inside_inputs():
    edges = graph()
    assert cycle(edges) is None, f"an import cycle: {' -> '.join(cycle(edges))}"


def test_no_format_module_imports_another():
    for name, uses in graph().items():
        if name in FORMATS:
            assert not uses & FORMATS, f"{name} imports {sorted(uses & FORMATS)}"


def test_the_model_imports_no_reader():
    assert graph()["model"] == set()


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone(module):
    """In a fresh interpreter, first thing: a cycle through another package would fail here."""
    code = f"import rxwatch.inputs.{module}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_simulator_keeps_no_reader():
    left = {p.name for p in (ROOT / "simulator").glob("*.py")} & {"timeline.py", "fhir.py", "csvlabs.py", "yamlsrc.py"}
    assert not left


def test_no_module_outside_inputs_imports_a_private_name_of_it():
    """Audit and the CLI use the readers' API (Reader.reset, csvlabs.extract_events,
    fhir_ndjson.patient_events...), never a name starting with '_'."""
    for folder in ("audit", "cli", "simulator", "suite", "render", "cohort"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rxwatch.inputs"):
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    assert not private, f"{path.relative_to(ROOT)} imports {private} from {node.module}"


# ---------------------------------------------------------------------------- the registry

def test_detect_by_suffix_then_by_content(tmp_path):
    from rxwatch.inputs.registry import detect

    assert detect("labs.CSV").name == "csv"
    assert detect("export/Observation.ndjson").name == "fhir-ndjson"
    assert detect("t.yaml").name == "timeline"
    bundle = '{"resourceType": "Bundle", "type": "collection", "entry": []}'
    assert detect("b.json", bundle).name == "fhir-bundle"
    assert detect("b.json", '{"patient": {"id": "p"}, "start": "2025-01-06"}').name == "timeline"
    # a key spelled with an escape is read as JSON reads it
    assert detect("b.json", '{"resource\\u0054ype": "Bundle", "entry": []}').name == "fhir-bundle"
    assert detect("b.json", '{"note": "resourceType", "start": "2025-01-06"}').name == "timeline"


def test_read_gives_each_format_its_reader():
    from rxwatch.inputs import read

    protocol = json.loads((DATA / "protocol.json").read_text())
    yaml = read(DATA / "case-07.yaml", protocol)
    csv = read(DATA / "labs.csv", protocol)
    assert yaml.patient == "case-07" and yaml.events
    assert csv.events and all(type(e).__name__ == "LabResult" for e in csv.events)


def test_the_package_api_names_resolve_to_their_modules():
    import rxwatch.inputs as inputs
    from rxwatch.inputs import model, registry, yamljson

    assert inputs.LabResult is model.LabResult
    assert inputs.read is registry.read and inputs.load_timeline is registry.read
    assert inputs.parse_timeline is yamljson.parse_timeline
    with pytest.raises(AttributeError):
        inputs.no_such_name  # noqa: B018


def test_reading_a_timeline_imports_no_other_format():
    code = (f"import json, sys\nfrom rxwatch.inputs import read\n"
            f"p = json.load(open({str(DATA / 'protocol.json')!r}))\n"
            f"read({str(DATA / 'labs.csv')!r}, p)\n"
            "print(sorted(m for m in sys.modules if m.startswith('rxwatch.inputs.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(eval(proc.stdout))  # noqa: S307 - our own child's printed list
    assert "rxwatch.inputs.csvlabs" in loaded
    assert not loaded & {"rxwatch.inputs.yamljson", "rxwatch.inputs.fhir_bundle", "rxwatch.inputs.fhir_ndjson"}
