"""Imports go one way: the CLI over the API and the actors, over flows, over providers and the
database, over the base layer (`aico`: settings, errors). Read from the source with `ast`, so
an import inside a function counts as much as one at the top of a file."""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Which of our packages each package may import (besides itself).
MAY_IMPORT: dict[str, set[str]] = {
    "aico": set(),
    "db": {"aico"},
    "providers": {"aico", "db"},
    "flows": {"aico", "db", "providers"},
    "actors": {"aico", "db", "providers", "flows"},
    "serve_apps": {"aico", "db", "providers", "flows", "actors"},
    "cli": {"aico", "db", "providers", "flows", "actors", "serve_apps"},
}
PACKAGES = tuple(MAY_IMPORT)


def package_imports(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """(importer, imported) package pairs, each with the `file:line module` that makes it."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue  # relative imports stay inside their package
                for module in modules:
                    top = module.split(".")[0]
                    if top in MAY_IMPORT and top != package:
                        where = f"{path.relative_to(root)}:{node.lineno} {module}"
                        found[(package, top)].append(where)
    return found


def package_cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Every cycle of the package graph, each once (as found from its smallest package)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    cycles: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                cycles.append([*path, start])
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return cycles


def test_the_packages_import_each_other_without_a_cycle():
    imports = package_imports()
    cycles = package_cycles(set(imports))
    assert not cycles, "\n".join(
        " → ".join(cycle) + "\n    " + "\n    ".join(
            where for a, b in itertools.pairwise(cycle) for where in imports[(a, b)][:3])
        for cycle in cycles)


def test_each_package_imports_only_the_layers_below_it():
    upward = [f"{where}  ({importer} may not import {imported})"
              for (importer, imported), places in sorted(package_imports().items())
              if imported not in MAY_IMPORT[importer] for where in places]
    assert not upward, "\n".join(upward)


def test_the_base_layer_and_the_database_import_nothing_above_them():
    imports = package_imports()
    assert {b for (a, b) in imports if a == "aico"} == set()
    assert {b for (a, b) in imports if a == "db"} <= {"aico"}
    # Only the CLI wires the Serve applications together; nothing imports the CLI.
    assert {a for (a, b) in imports if b == "serve_apps"} <= {"cli"}
    assert {a for (a, b) in imports if b == "cli"} == set()


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path: Path):
    # The rules above hold only if the scan finds imports wherever they are written.
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "aico" / "wiring.py").write_text(
        "def up():\n    from serve_apps.app import build_api_app\n    return build_api_app\n")
    (tmp_path / "serve_apps" / "app.py").write_text("import aico.settings\n")
    imports = package_imports(tmp_path)
    assert imports[("aico", "serve_apps")] == ["aico/wiring.py:2 serve_apps.app"]
    assert package_cycles(set(imports)) == [["aico", "serve_apps", "aico"]]
