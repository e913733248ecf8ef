"""The package structure: imports go one way, and no module reaches into another package's
private names.

The layers, lowest first (a package may import from its own layer and the layers below it):

    errors
    runtime          what generated modules run on: jax and numpy only
    ir               the plan's value objects, Gaussian laws, the array-code printer of maps
    groups           group families' group objects (lattice generators, SO(3))
    rules            layer rules and the nonlinearity table (what the front end asks about φ)
    frontend         parse -> layer graph -> typed graph
    compiler         identities, derivation, orbit strategy
    codegen          module emission, --standalone
    the rest         network, methods, molecules, explain, render, verify, api, cli, testing

Function-level imports count as much as top-level ones: a lazy import only hides a cycle.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kernelc"
LAYERS = ["errors", "runtime", "ir", "groups", "rules", "frontend", "compiler", "codegen"]
TOP = len(LAYERS)  # everything else


def _layer(part: str) -> int:
    return LAYERS.index(part) if part in LAYERS else TOP


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(line, imported module, imported names) of every import in ``path``, relative ones
    resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, [a.name for a in node.names]


def _part(module: str) -> str:
    """The package (or top-level module) of kernelc a dotted name belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path):
    own = _part(_module_name(path))
    for line, target, names in _imports(path):
        if not target.startswith("kernelc"):
            continue
        # the package root's constants (__version__) are not a layer
        targets = [target] if target != "kernelc" else \
            [f"kernelc.{n}" for n in names if not n.startswith("__")]
        for t in targets:
            part = _part(t)
            if part == own or not part:
                continue
            assert _layer(part) <= _layer(own) or _layer(own) == TOP, (
                f"kernelc/{path.relative_to(PACKAGE)}:{line} imports {t}: {own or 'kernelc'} "
                f"is below {part} (order: {' < '.join(LAYERS)} < the rest)")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_names_from_other_packages(path):
    own = _part(_module_name(path))
    for line, target, names in _imports(path):
        if not target.startswith("kernelc.") or _part(target) == own:
            continue
        private = [n for n in names if n.startswith("_")]
        assert not private, f"kernelc/{path.relative_to(PACKAGE)}:{line} imports {private} " \
                            f"from {target}"


def test_the_layers_exist():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert set(LAYERS) - {"errors"} <= packages


def test_every_package_is_installed():
    """pyproject.toml lists the packages explicitly: a new subpackage missing there works in an
    editable install (this checkout) and is absent from a wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
