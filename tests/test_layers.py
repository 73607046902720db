"""Architecture rules: import layers, one jit policy, lazy heavy imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "meshstat"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _top_level_imports(path: Path) -> set[str]:
    """Imports executed when the module is imported (module body, not functions, not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_polars_only_in_report() -> None:
    """Tables are made in ``report``; ``engine.sinks`` only uses polars' streaming Parquet writer."""
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "report" or rel.as_posix() == "engine/sinks.py":
            continue
        assert not any(m == "polars" or m.startswith("polars.") for m in _imports(path)), rel


def test_parsers_and_model_are_pure_python() -> None:
    heavy = ("numpy", "numba", "polars", "scipy", "matplotlib")
    files = [*sorted((PKG / "model").glob("*.py")), PKG / "errors.py", PKG / "inputs.py",
             *sorted((PKG / "parsers").glob("*.py"))]
    for path in files:
        if path.exists():
            bad = [m for m in _imports(path) if m.split(".")[0] in heavy]
            assert not bad, (path.name, bad)


def test_lower_layers_do_not_import_upper_ones() -> None:
    layers = {
        "errors": 1,
        "inputs": 2,
        "model": 2,
        "compiler": 3,
        "stats": 3,
        "_kernels": 3,
        "balancers": 3,
        "engine": 4,
        "report": 5,
        "cli": 6,
    }
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        mine = layers.get(rel.parts[0].removesuffix(".py"))
        if mine is None:
            continue
        for mod in _imports(path):
            if not mod.startswith("meshstat."):
                continue
            theirs = layers.get(mod.split(".")[1])
            if theirs is not None and rel.parts[0].removesuffix(".py") != mod.split(".")[1]:
                assert theirs <= mine, f"{rel} (layer {mine}) imports {mod} (layer {theirs})"


def test_one_jit_policy() -> None:
    for path in PKG.rglob("*.py"):
        if path.name == "_jit.py":
            continue
        text = path.read_text()
        assert "njit(" not in text and "numba.jit(" not in text and "@jit(" not in text.replace("@jit(inline", ""), path


def test_cli_plugins_import_nothing_heavy() -> None:
    heavy = ("numpy", "numba", "polars", "scipy", "matplotlib")
    files = sorted((PKG / "cli").glob("*.py"))
    assert files
    for path in files:
        bad = [m for m in _top_level_imports(path) if m.split(".")[0] in heavy]
        assert not bad, (path.name, bad)


def test_cli_command_modules_do_not_import_the_parser() -> None:
    """Command modules use ``cli.args``/``cli.context``/``cli.status``; ``cli.parser`` imports them, not the reverse."""
    for path in sorted((PKG / "cli").glob("*.py")):
        if path.stem in ("__init__", "parser"):
            continue
        bad = [m for m in _imports(path) if m in ("meshstat.cli", "meshstat.cli.parser")]
        assert not bad, (path.name, bad)


def test_cli_modules_import_no_circle() -> None:
    graph = {
        f"meshstat.cli.{p.stem}" if p.stem != "__init__" else "meshstat.cli": {
            m for m in _imports(p) if m == "meshstat.cli" or m.startswith("meshstat.cli.")
        }
        for p in (PKG / "cli").glob("*.py")
    }
    done: set[str] = set()

    def visit(mod: str, stack: tuple[str, ...]) -> None:
        assert mod not in stack, " -> ".join((*stack, mod))
        if mod in done:
            return
        for dep in graph.get(mod, ()):
            visit(dep, (*stack, mod))
        done.add(mod)

    for mod in sorted(graph):
        visit(mod, ())


def test_startup_is_lazy() -> None:
    code = (
        "import sys, meshstat, meshstat.cli\n"
        "meshstat.cli.build_parser()\n"
        "print(sorted(m for m in ('numpy','numba','polars','scipy','matplotlib','yaml') if m in sys.modules))"
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
        "import meshstat.engine, meshstat.engine.result, meshstat.stats, meshstat.inference\n"
        "import meshstat\n"
        "from meshstat import simulate, compare\n"
        "print(callable(simulate), callable(compare), callable(meshstat.simulate))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["True", "True", "True"]
    import meshstat

    clash = [name for name in meshstat._EXPORTS if (PKG / f"{name}.py").exists() or (PKG / name).is_dir()]
    assert not clash, clash
