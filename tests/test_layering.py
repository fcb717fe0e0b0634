"""The layering holds without tricks: walk every module's imports (ast) and fail on one that
goes upward, or on an import inside a function that is not of an optional or heavy library.

Layers, lowest first (a module may import its own layer and those below):
  base    errors, files, progress, targets
  ir      the IR, facts, geometry (mapping, plans), op table, verifier, text, analyses
  model   the cost model, reports, frontend, simulator, training and data
  passes  the passes
  api     pipeline, api (compile, accuracy on the chip), cli, the report pages (view), the package itself
  search  cimc.search, and `python -m cimc` (the program, which runs the search command)
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"cimc": "cimc", "passes": "cimc.passes", "targets": "cimc.targets", "search": "cimc.search"}
LAYERS = [
    ("base", ["cimc.errors", "cimc.files", "cimc.progress", "cimc.targets", "cimc.targets.*"]),
    ("ir", ["cimc.ir", "cimc.facts", "cimc.mapping", "cimc.plans", "cimc.ops", "cimc.verify", "cimc.text",
            "cimc.analyses"]),
    ("model", ["cimc.cost", "cimc.cost.*", "cimc.report", "cimc.frontend", "cimc.frontend.*", "cimc.onnx_torch", "cimc.onnx_torch.*",
               "cimc.sim", "cimc.sim.*", "cimc.train", "cimc.data"]),
    ("passes", ["cimc.passes", "cimc.passes.*"]),
    ("api", ["cimc", "cimc.pipeline", "cimc.api", "cimc.accuracy", "cimc.cli", "cimc.view", "cimc.view.*"]),
    ("search", ["cimc.search", "cimc.search.*", "cimc.__main__"]),
]
# imported where they are used, named here: heavy to import (seconds, hundreds of MB) or
# needed by one command only; a user without them can still compile. A cimc module that imports
# one of them at its top is heavy too (`_heavy`), and may be imported where it is used.
LAZY = {"torch", "optuna", "matplotlib", "sklearn", "onnxruntime", "sqlalchemy", "ortools", "networkx", "scipy"}


def _modules():
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def _layer(module: str) -> int:
    for rank, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return rank
    raise AssertionError(f"module {module} is in no layer: add it to LAYERS")


def _imports(path: Path, module: str):
    """(imported module, line, inside a function or class body) for every import."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` and try/except at the top level count as top level
        if isinstance(node, (ast.If, ast.Try)):
            top |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = module.split(".")[: -node.level or None] if not path.name == "__init__.py" else \
                    module.split(".")[: len(module.split(".")) - node.level + 1]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module]
            if names[0] in ("cimc", "cimc.passes", "cimc.search", "cimc.targets"):  # from cimc import x: x may be a module
                names = [f"{names[0]}.{a.name}" if f"{names[0]}.{a.name}" in ALL else names[0] for a in node.names]
        else:
            continue
        for name in names:
            yield name, node.lineno, id(node) not in top


ALL = {m for m, _ in _modules()}


def _heavy() -> set[str]:
    """cimc modules that import a LAZY library at their top, directly or through another."""
    tops = {m: [n for n, _, inside in _imports(p, m) if not inside] for m, p in _modules()}
    heavy: set[str] = set()
    grew = True
    while grew:
        grew = False
        for m, names in tops.items():
            if m not in heavy and any(n.split(".")[0] in LAZY or n in heavy for n in names):
                heavy.add(m)
                grew = True
    return heavy


def _violations():
    upward, lazy = [], []
    heavy = _heavy()
    for module, path in _modules():
        rank = _layer(module)
        for name, line, inside in _imports(path, module):
            where = f"{path.relative_to(ROOT)}:{line}"
            if name.startswith("cimc"):
                target = name if name in ALL else next((m for m in sorted(ALL, key=len, reverse=True)
                                                        if name.startswith(m + ".")), name)
                if _layer(target) > rank:
                    upward.append(f"{where}: {module} ({LAYERS[rank][0]}) imports {target} ({LAYERS[_layer(target)][0]})")
                if inside and target not in heavy:
                    lazy.append(f"{where}: {module} imports {name} inside a function (it is not heavy)")
            elif inside and name.split(".")[0] not in LAZY:
                lazy.append(f"{where}: {module} imports {name} inside a function (not a named heavy library)")
    return upward, lazy


def test_no_module_imports_a_layer_above_its_own():
    upward, _ = _violations()
    assert not upward, "\n".join(upward)


def test_imports_are_at_the_top_except_named_heavy_libraries():
    _, lazy = _violations()
    assert not lazy, "\n".join(lazy)


def test_the_walk_sees_an_upward_import(tmp_path, monkeypatch):
    """The check can fail: a core module importing the search is caught."""
    fake = tmp_path / "cimc"
    fake.mkdir()
    (fake / "ir.py").write_text("from cimc.search import space\n\ndef f():\n    import json\n")
    monkeypatch.setitem(FOLDERS, "cimc", "cimc")
    global ROOT
    old = ROOT
    ROOT = tmp_path
    try:
        got = list(_imports(fake / "ir.py", "cimc.ir"))
    finally:
        ROOT = old
    assert ("cimc.search.space", 1, False) in got or ("cimc.search", 1, False) in got
    assert ("json", 4, True) in got
    assert _layer("cimc.search.space") > _layer("cimc.ir")


def test_heavy_modules_are_the_ones_that_pull_torch_or_ortools_in():
    heavy = _heavy()
    assert {"cimc.passes.solver", "cimc.onnx_torch", "cimc.search.supernet"} <= heavy
    assert not {"cimc.ir", "cimc.cost", "cimc.passes.pack", "cimc.api"} & heavy


def test_every_package_is_named_in_pyproject():
    """A package left out of `[tool.setuptools] packages` is missing from a wheel (editable
    installs do not notice)."""
    import re

    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(cimc[\w.]*)"', re.search(r"packages = \[([^\]]*)\]", text).group(1)))
    packages = {m for m, p in _modules() if p.name == "__init__.py"}
    assert packages <= listed, f"add to pyproject.toml's packages: {sorted(packages - listed)}"
