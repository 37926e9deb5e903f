"""The layering of design.md, read from the code: which cvtrain module may import which (deferred imports and
imports through other modules included), no import cycles, and small modules."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cvtrain"
MAX_LINES = 300

# layer -> the layers it must never reach, directly or through others.
ENTRY_POINTS = {"commands", "composition", "cli", "cli_help", "overrides"}
FORBIDDEN = {
    "contracts": {"config", "data", "models", "tasks", "metrics", "engine", "plots", *ENTRY_POINTS},
    # drawing from plain arrays only: metrics describe plots, tasks draw previews, the engine writes the files
    "plots": {"config", "data", "models", "tasks", "metrics", "engine", *ENTRY_POINTS},
    "config": {"contracts", "data", "models", "tasks", "metrics", "engine", *ENTRY_POINTS},
    "engine": {"data", "models", "tasks", "metrics", *ENTRY_POINTS},
    "data": {"models", "tasks", "metrics", "engine", *ENTRY_POINTS},
    "models": {"data", "tasks", "metrics", "engine", *ENTRY_POINTS},
    "metrics": {"models", "tasks", "engine", "plots", *ENTRY_POINTS},
    "tasks": {"engine", *ENTRY_POINTS},
}

# cvtrain/data/: a folder per format, and the parts formats share (which must know no format).
SHARED_DATA_PARTS = {"annotations", "decoding", "samples", "transforms"}
DATA_FORMATS = {
    p.name for p in (PACKAGE / "data").iterdir() if p.is_dir() and (p / "__init__.py").is_file()
} - (SHARED_DATA_PARTS)
# The built-in shapes write their scenes in the real ImageFolder, VOC and COCO formats and read them back with those
# formats' own loaders (what trains on shapes is what trains on real data): the one format that imports others.
FORMATS_READ_BY = {"shapes": {"imagefolder", "voc", "coco"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cvtrain"


@cache
def imports(module: str) -> frozenset[str]:
    """Every cvtrain module `module` imports anywhere in its body (function-level imports too)."""
    found = set()
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).strip(".")
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES and name != module)
    return frozenset(found)


def reachable(module: str) -> set[str]:
    seen, stack = set(), [module]
    while stack:
        for other in imports(stack.pop()):
            if other not in seen:
                seen.add(other)
                stack.append(other)
    return seen


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) in FORBIDDEN))
def test_no_module_reaches_a_layer_it_must_not_know(module: str) -> None:
    bad = sorted(m for m in reachable(module) if layer(m) in FORBIDDEN[layer(module)])
    assert not bad, f"{module} ({layer(module)}) reaches {bad}"


def data_format(module: str) -> str | None:
    """The format folder of cvtrain/data/ that `module` belongs to, if any."""
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "data" and parts[2] in DATA_FORMATS else None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if data_format(m)))
def test_no_data_format_imports_another(module: str) -> None:
    own = data_format(module)
    allowed = {own, *FORMATS_READ_BY.get(own, ())}
    bad = sorted(m for m in reachable(module) if data_format(m) not in {None, *allowed})
    assert not bad, f"{module} (data format {own}) reaches another format: {bad}"


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if not data_format(m) and layer(m) not in ENTRY_POINTS)
)
def test_only_the_entry_points_know_a_data_format(module: str) -> None:
    # the shared parts of data/, the engine, tasks and metrics work for any format; the commands pick one
    bad = sorted(m for m in reachable(module) if data_format(m))
    assert not bad, f"{module} reaches the data formats {bad}"


def test_the_data_formats_are_found() -> None:
    assert {"imagefolder", "voc", "coco", "yolo_txt", "shapes", "synthetic"} <= DATA_FORMATS
    assert data_format("cvtrain.data.voc.xml") == "voc" and data_format("cvtrain.data.decoding.jpeg") is None


def test_there_are_no_import_cycles() -> None:
    cycles = [m for m in MODULES if m in reachable(m)]
    assert not cycles, f"modules that import themselves through others: {cycles}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines (at most {MAX_LINES})"


def test_the_import_graph_is_read() -> None:
    # Guard against a vacuous pass: known edges must be seen, deferred ones included.
    assert "cvtrain.engine.loop" in imports("cvtrain.commands.fit")
    assert "cvtrain.engine.distributed" in imports("cvtrain.cli")  # imported inside a function
    assert "cvtrain.contracts.batch" in reachable("cvtrain.engine.loop")
    assert "cvtrain.data.voc.detection" in imports("cvtrain.data.shapes.detection")


# A dataset's or task's optional capability is a Protocol in cvtrain/contracts, asked with isinstance: a getattr or
# hasattr on one would be a capability nobody declared. A wrapper's `__getattr__` forwarding every name is not
# asking for one.
ASKED_OF = re.compile(r"(^|_)(dataset|ds|task)s?($|_)")


def _subject(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def capability_probes(source: str) -> list[str]:
    """`getattr(...)` / `hasattr(...)` calls on a dataset or task (by the name of their first argument)."""
    found = []
    forwarding: set[ast.AST] = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            forwarding.update(ast.walk(node))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
            and ASKED_OF.search(_subject(node.args[0]))
            and node not in forwarding
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_capabilities_of_datasets_and_tasks_are_declared_in_contracts(module: str) -> None:
    probes = capability_probes(MODULES[module].read_text())
    assert not probes, (
        f"{MODULES[module]}: {probes}; declare the capability as a Protocol in cvtrain/contracts"
    )


def test_the_capability_scan_sees_a_probe() -> None:
    # What the engine and fit asked before the capabilities were declared, and a forwarding wrapper it allows.
    assert capability_probes('getattr(train_ds, "batch_sampler_factory", None)')
    assert capability_probes('inner = getattr(self.dataset, "set_epoch", None)')
    assert capability_probes("hasattr(setup.task, 'preview')")
    assert not capability_probes(
        "class W:\n    def __getattr__(self, name):\n        return getattr(self.dataset, name)"
    )
    assert not capability_probes("getattr(cfg.data, 'root', None)")
