"""Architecture rules (docs/ARCHITECTURE.md): layers, no import circles, one jit policy, lazy heavy imports.

Every ``import`` of every module is read, at module level and inside functions, relative or absolute, and
``from meshstat import X`` is resolved through the package's lazy export map to the module that defines X.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "meshstat"

#: The layers of docs/ARCHITECTURE.md, keyed by the first part of the module name below ``meshstat``.
#: A module may import modules of its own layer or lower ones, never higher ones; every package and top-level
#: module must appear here (a new one is placed on purpose, not by accident).
LAYERS: dict[str, int] = {
    "errors": 0,
    "records": 0,
    "inputs": 1,
    "workers": 1,
    "outputs": 1,
    "stats": 1,
    "model": 2,
    "parsers": 3,
    "compiler": 4,
    "_kernels": 4,
    "balancers": 5,
    "netfilter": 6,
    "kubeproxy": 6,
    "mesh": 6,
    "topology": 6,
    "engine": 7,
    "audit": 7,
    "inference": 8,
    "oracle": 9,
    "report": 10,
    "plots": 10,
    "cli": 11,
    "__main__": 11,
}

HEAVY = ("numpy", "numba", "polars", "scipy", "matplotlib")

#: A module longer than this says why in its docstring, with a sentence starting "Why this module is long:".
MAX_LINES = 800


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


@cache
def _exports() -> dict[str, str]:
    tree = ast.parse((PKG / "__init__.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "_EXPORTS":
            return ast.literal_eval(node.value)
    raise AssertionError("meshstat/__init__.py has no _EXPORTS map")


def _known(name: str) -> str | None:
    """The module that ``name`` (a module or a module.attribute) refers to, or None if it is not meshstat's."""
    mods = _modules()
    while name not in mods and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in mods and name != "meshstat" else None


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    mods = _modules()
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".")
        if mods[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    out = []
    for alias in node.names:
        if f"{origin}.{alias.name}" in mods:
            out.append(f"{origin}.{alias.name}")
        elif origin == "meshstat" and alias.name in _exports():
            out.append(_exports()[alias.name])
        else:
            out.append(origin)
    return out


@cache
def _graph() -> dict[str, frozenset[str]]:
    """module -> the meshstat modules it imports anywhere in its body (functions and TYPE_CHECKING included)."""
    graph = {}
    for module, path in _modules().items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, node):
                    known = _known(target) if target.startswith("meshstat") else None
                    if known and known != module:
                        deps.add(known)
        graph[module] = frozenset(deps)
    return graph


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else None
    assert part in LAYERS, f"{module}: place meshstat.{part} in a layer (tests/test_layers.py and ARCHITECTURE.md)"
    return LAYERS[part]


def _third_party(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_the_reader_sees_the_imports() -> None:
    """The graph is not empty and sees imports inside functions and through ``from meshstat import X``."""
    graph = _graph()
    assert len(graph) > 50
    assert sum(len(v) for v in graph.values()) > 150
    assert _cycles({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}) == [
        ["a", "b", "c"]
    ]


def test_no_import_circle() -> None:
    cycles = _cycles(dict(_graph()))
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_upward_import() -> None:
    bad = []
    for module, deps in _graph().items():
        if module == "meshstat":
            continue
        mine = _layer(module)
        for dep in deps:
            if _layer(dep) > mine:
                bad.append(f"{module} (layer {mine}) imports {dep} (layer {_layer(dep)})")
    assert not bad, "\n".join(sorted(bad))


def test_every_package_has_a_layer() -> None:
    for module in _modules():
        if module != "meshstat":
            _layer(module)


def test_polars_only_in_report() -> None:
    """Tables are made in ``report``; ``engine.sinks`` only uses polars' streaming Parquet writer for huge runs."""
    for module, path in _modules().items():
        if module.startswith(("meshstat.report", "meshstat.engine.sinks")):
            continue
        assert not any(m == "polars" or m.startswith("polars.") for m in _third_party(path)), module


#: The one exception: the JSON key table of texts of 1 MiB and more is found with numpy, imported there only.
LAZY_NUMPY = {"meshstat.parsers.yaml_loader"}


def test_parsers_and_model_are_pure_python() -> None:
    for module, path in _modules().items():
        if module.startswith(("meshstat.parsers", "meshstat.model", "meshstat.errors", "meshstat.inputs")):
            bad = [m for m in _third_party(path) if m.split(".")[0] in HEAVY
                   and not (module in LAZY_NUMPY and m == "numpy")]
            assert not bad, (module, bad)
    for module in LAZY_NUMPY:  # inside the function that needs it, never at module level
        assert "numpy" not in _third_party(_modules()[module], top_level_only=True)


def test_one_jit_policy() -> None:
    for path in PKG.rglob("*.py"):
        if path.name == "_jit.py":
            continue
        text = path.read_text()
        assert "njit(" not in text and "numba.jit(" not in text and "@jit(" not in text.replace("@jit(inline", ""), path


def test_cli_modules_import_nothing_heavy() -> None:
    paths = sorted((PKG / "cli").glob("*.py"))
    assert len(paths) > 5
    for path in paths:
        bad = [m for m in _third_party(path, top_level_only=True) if m.split(".")[0] in HEAVY]
        assert not bad, (path.name, bad)


def test_command_modules_never_import_the_parser_builder() -> None:
    graph = _graph()
    for module in graph:
        if module.startswith("meshstat.cli.") and module != "meshstat.cli.parser":
            assert "meshstat.cli.parser" not in graph[module], module
            assert "meshstat.cli" not in graph[module], module


def test_no_module_is_long_without_saying_why() -> None:
    long = []
    for module, path in _modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_LINES and "Why this module is long:" not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{module}: {text.count(chr(10))} lines")
    assert not long, long


def test_nothing_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|\bperformance\.md\b|\bDESIGN\.md\b|\bissue \d+\b|\bthis issue\b", re.IGNORECASE)
    files = [*PKG.rglob("*.py"), ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    hits = []
    for path in files:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if outside.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_startup_is_lazy() -> None:
    code = (
        "import sys, meshstat, meshstat.cli\n"
        "meshstat.cli.build_parser()\n"
        "print(sorted(m for m in ('numpy','numba','polars','scipy','matplotlib','yaml','rich','shtab')"
        " if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_exact_mode_needs_no_numba() -> None:
    code = (
        "import sys\n"
        "from meshstat import Weighted, simulate\n"
        "simulate(Weighted.from_weights([9, 1]), 10**12, mode='exact', rng=1)\n"
        "print('numba' in sys.modules, 'scipy.stats' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False False"


def test_no_export_is_shadowed_by_a_submodule() -> None:
    """``meshstat.simulate`` stays the function whatever was imported before (no submodule of that name)."""
    code = (
        "import meshstat.engine, meshstat.stats, meshstat.inference\n"
        "import meshstat\n"
        "from meshstat import simulate, compare\n"
        "print(callable(simulate), callable(compare), callable(meshstat.simulate))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["True", "True", "True"]
    import meshstat

    clash = [name for name in meshstat._EXPORTS if (PKG / f"{name}.py").exists() or (PKG / name).is_dir()]
    assert not clash, clash


def test_the_oracle_scripts_import_only_the_standard_library() -> None:
    """The oracle's listener and client run by path inside network namespaces (``oracle/netns.py``:
    ``_BACKEND_SCRIPT``, ``_CLIENT_SCRIPT``), where meshstat is not importable: only the standard library."""
    import sys

    from meshstat.oracle import netns

    for script in (netns._BACKEND_SCRIPT, netns._CLIENT_SCRIPT):
        mods = {m.split(".")[0] for m in _third_party(script)}
        assert mods <= set(sys.stdlib_module_names) | {"__future__"}, (script.name, mods)
