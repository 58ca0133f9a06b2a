"""The import graph of the project's own modules: every import points down the layers that
crawl2model/__init__.py describes (or stays in its own package), and no module imports itself
through others. Imports inside functions count; imports for annotations only (`if TYPE_CHECKING:`)
do not, since they never run."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"pipeline": "crawl2model.pipeline", "model": "crawl2model.model", "classifiers": "crawl2model.classifiers",
           "train": "crawl2model.train", "stages": "crawl2model.stages", "crawl2model": "crawl2model",
           "crawl2model/report": "crawl2model.report", "crawl2model/diff": "crawl2model.diff"}
LAYERS = {"crawl2model.pipeline": 1, "crawl2model.model": 2, "crawl2model.classifiers": 3, "crawl2model.train": 3,
          "crawl2model.stages": 4, "crawl2model.catalog": 5, "crawl2model.cli": 5,
          "crawl2model.diff": 5, "crawl2model.report": 5}


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def package_of(module: str) -> str:
    return next(p for p in sorted(LAYERS, key=len, reverse=True) if module == p or module.startswith(p + "."))


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports (a `from package import module` names the module)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found |= {name for name in names if name in known}
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {module: imports(path, set(found)) - {module} for module, path in found.items()}


def test_every_import_points_down_the_layers():
    upward = []
    for module, targets in graph().items():
        if module == "crawl2model":
            continue
        for target in targets:
            if target == "crawl2model":
                continue
            source, dest = package_of(module), package_of(target)
            same_layer_peer = LAYERS[source] == LAYERS[dest] and source != dest and LAYERS[source] != 5
            if LAYERS[dest] > LAYERS[source] or same_layer_peer:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_circles():
    edges = graph()
    circles = []

    def visit(module: str, path: list[str], seen: set[str]) -> None:
        for target in sorted(edges[module]):
            if target == path[0]:
                circles.append(" -> ".join([*path, target]))
            elif target not in seen and target > path[0]:  # each circle once, from its smallest module
                seen.add(target)
                visit(target, [*path, target], seen)

    for module in sorted(edges):
        visit(module, [module], {module})
    assert circles == []


def test_the_check_sees_imports_inside_functions_and_finds_upward_ones(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from crawl2model.stages import extract\n"
                      "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from crawl2model.cli import app\n")
    assert imports(source, set(modules())) == {"crawl2model.stages", "crawl2model.stages.extract"}
    assert package_of("crawl2model.stages.extract") == "crawl2model.stages"
    assert len(modules()) > 60 and "crawl2model.pipeline.runner" in graph()
