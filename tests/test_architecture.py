"""The package structure: imports go one way, and no module reaches into another package's
private names.

The layers, lowest first (a package may import from its own layer and the layers below it):

    errors
    hostmem          the host's memory files (a leaf: what the runtime's default budget reads)
    runtime          what generated modules run on: jax and numpy only
    ir               the plan's value objects, Gaussian laws, the array-code printer of maps
    groups           group families' group objects (lattice generators, SO(3))
    rules            layer rules and the nonlinearity table (what the front end asks about φ)
    frontend         parse -> layer graph -> typed graph
    compiler         identities and their plan rewrites, derivation
    codegen          module emission, --standalone
    the rest         network, methods, molecules, explain, render, verify, api, cli, testing

A group family's package (kernelc/families/<family>/) is a vertical slice: each of its modules
belongs to the layer of its pipeline stage (FAMILY_STAGES), and the protocol
(kernelc/families/protocol.py, the package roots) to ``groups``. So a family's kinds may import
the front end's machinery, and the front end may import the families' kinds, but a family's
group module may not import its rules.

Function-level imports count as much as top-level ones: a lazy import only hides a cycle.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kernelc"
LAYERS = ["errors", "hostmem", "runtime", "ir", "groups", "rules", "frontend", "compiler", "codegen"]
TOP = len(LAYERS)  # everything else
#: The layer of each stage module of a family package; the protocol and package roots are groups.
FAMILY_STAGES = {"family": "groups", "group": "groups", "plan": "ir", "kinds": "frontend",
                 "rules": "rules", "identities": "compiler", "orbit": "compiler",
                 "network": "the rest",
                 "grid": "frontend"}  # the SO(3) default grids: graph defaults before typing


def _layer(module: str) -> int:
    """The layer of a kernelc module (dotted name)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] == "families":
        if len(parts) <= 3 or parts[2] == "protocol":  # kernelc.families[.protocol|.<family>]
            return LAYERS.index("groups")
        stage = FAMILY_STAGES[parts[3]]  # KeyError: a family module of no declared stage
        return LAYERS.index(stage) if stage in LAYERS else TOP
    part = _part(module)
    return LAYERS.index(part) if part in LAYERS else TOP


def _layer_name(layer: int) -> str:
    return LAYERS[layer] if layer < TOP else "the rest"


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
    """The package (or top-level module) of kernelc a dotted name belongs to; a family package
    (``families.so3``) counts as a package of its own."""
    parts = module.split(".")
    if len(parts) > 2 and parts[1] == "families" and parts[2] != "protocol":
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else ""


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path):
    module = _module_name(path)
    own = _layer(module)
    for line, target, names in _imports(path):
        if not target.startswith("kernelc"):
            continue
        # the package root's constants (__version__) are not a layer
        targets = [target] if target != "kernelc" else \
            [f"kernelc.{n}" for n in names if not n.startswith("__")]
        for t in targets:
            if not _part(t):
                continue
            assert _layer(t) <= own or own == TOP, (
                f"kernelc/{path.relative_to(PACKAGE)}:{line} imports {t}: {module} "
                f"({_layer_name(own)}) is below {_layer_name(_layer(t))} "
                f"(order: {' < '.join(LAYERS)} < the rest)")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_names_from_other_packages(path):
    own = _part(_module_name(path))
    for line, target, names in _imports(path):
        if not target.startswith("kernelc.") or _part(target) == own:
            continue
        private = [n for n in names if n.startswith("_")]
        assert not private, f"kernelc/{path.relative_to(PACKAGE)}:{line} imports {private} " \
                            f"from {target}"


@pytest.mark.parametrize("module, layer", [
    ("kernelc.families", "groups"), ("kernelc.families.protocol", "groups"),
    ("kernelc.families.so3", "groups"), ("kernelc.families.so3.group", "groups"),
    ("kernelc.families.lattice.kinds", "frontend"), ("kernelc.families.so3.rules", "rules"),
    ("kernelc.families.lattice.identities", "compiler"),
    ("kernelc.families.so3.network", "the rest"), ("kernelc.frontend.graph", "frontend")])
def test_a_family_module_is_in_the_layer_of_its_stage(module, layer):
    assert _layer_name(_layer(module)) == layer


def test_every_family_module_has_a_stage():
    for path in sorted((PACKAGE / "families").glob("*/*.py")):
        if path.name != "__init__.py":
            assert path.stem in FAMILY_STAGES, f"kernelc/{path.relative_to(PACKAGE)}: which stage?"


def test_the_layers_exist():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert set(LAYERS) - {"errors", "hostmem"} <= packages and {"errors", "hostmem"} <= modules


def test_every_package_is_installed():
    """pyproject.toml lists the packages explicitly: a new subpackage missing there works in an
    editable install (this checkout) and is absent from a wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
