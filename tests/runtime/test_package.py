"""The runtime package: what generated modules import, and their standalone twins that inline it.

* the runtime depends on jax, numpy and the standard library only (and kernelc.errors and kernelc.hostmem, with a
  fallback), and its helper names are unique across its modules (a standalone module holds
  them side by side);
* every module in generated/ holds its own network and nothing else (one function, _propagate);
* ``standalone_module`` runs in a subprocess where only jax and numpy (and what they need) can
  be imported, and gives the same kernels as the installed runtime;
* a module generated for another runtime version is refused with a message.
"""
import ast
import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import kernelc
from kernelc.api import check_generated_source
from kernelc.codegen.standalone import RUNTIME_MODULES, runtime_table, standalone_module
from kernelc.errors import InputError
from kernelc.runtime import RUNTIME_VERSION
from kernelc.runtime.driver import tiled_kernel

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = {"numpy", "jax", "kernelc"}  # kernelc: only kernelc.runtime.*, kernelc.errors, kernelc.hostmem


def _imports(module_name):
    module = importlib.import_module(module_name)
    tree = ast.parse(module.__loader__.get_source(module_name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module


@pytest.mark.parametrize("module_name", RUNTIME_MODULES)
def test_runtime_imports_only_jax_numpy_and_the_standard_library(module_name):
    # maps' numpy backend reads scipy.special when it is installed, and the driver's progress
    # bar is tqdm's when it is installed (each inside a try/except ImportError)
    optional = {"kernelc.runtime.maps": {"scipy"}, "kernelc.runtime.driver": {"tqdm"}}.get(
        module_name, set())
    for name in _imports(module_name):
        top = name.split(".")[0]
        assert top in sys.stdlib_module_names or top in LIBRARIES | optional, (module_name, name)
        if top == "kernelc":
            assert name.startswith("kernelc.runtime") or name in ("kernelc.errors",
                                                                   "kernelc.hostmem"), name


def test_runtime_names_are_unique_across_modules():
    seen = {}
    for module_name in RUNTIME_MODULES:
        module = importlib.import_module(module_name)
        tree = ast.parse(module.__loader__.get_source(module_name))
        for stmt in tree.body:
            names = [stmt.name] if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)) else \
                [t.id for s in ([stmt] if isinstance(stmt, ast.Assign) else [])
                 for t in s.targets if isinstance(t, ast.Name)]
            for name in names:
                if name == "__all__":
                    continue
                assert name not in seen, f"{name} in {module_name} and {seen[name]}"
                seen[name] = module_name
    table, _ = runtime_table()
    assert {"tiled_kernel", "stencil", "gauss_hermite_2d", "so3_sample"} <= set(table)


@pytest.mark.parametrize("path", sorted((ROOT / "generated").glob("*.py")), ids=lambda p: p.stem)
def test_generated_modules_hold_only_their_network(path):
    tree = ast.parse(path.read_text())
    functions = [s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.ClassDef))]
    assert functions == ["_propagate"]
    runtime_imports = [s.module for s in tree.body if isinstance(s, ast.ImportFrom)]
    assert runtime_imports and all(m.startswith("kernelc.runtime.") for m in runtime_imports)


#: jax, numpy and what jax itself imports; nothing else of the environment (no kernelc, sympy)
ALLOWED = ("jax", "jaxlib", "numpy", "ml_dtypes", "opt_einsum", "scipy")

_RUN = textwrap.dedent('''
    import json, sys
    sys.path.append(sys.argv[3])  # run with -S -I: the standard library and this folder only
    import numpy as np
    namespace = {"__name__": "standalone"}
    exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), namespace)
    out = namespace["kernel_fn"](np.load(sys.argv[2]), dtype="float64")
    # the on-disk Gram matrices (runtime.store) are inlined too: the same numbers, memory-mapped
    on_disk = namespace["kernel_fn"](np.load(sys.argv[2]), dtype="float64", out="gram")
    assert all(isinstance(v, np.memmap) and np.array_equal(v, out[k]) for k, v in on_disk.items())
    assert "kernelc" not in sys.modules and "sympy" not in sys.modules
    print(json.dumps({k: v.tolist() for k, v in out.items()}))
''')


def _only_jax_and_numpy(folder: Path) -> Path:
    """A folder of links to the installed jax, numpy and their dependencies, and nothing else."""
    import jax
    site = Path(jax.__file__).resolve().parents[1]
    folder.mkdir()
    for entry in site.iterdir():
        if entry.name.split("-")[0].split(".")[0] in ALLOWED:
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.parametrize("spec", [
    "group p4\ninput 5 x 5 channels 2\nlift(size=3, b_std=0.1)\nrelu\ngconv(size=3)\n"
    "erf\ngroup_pool\ndense(1)",
    "group SO3\ninput sphere bandlimit 3 channels 2\nlift(bandlimit=3, grid=3)\nrelu\n"
    "gconv(bandlimit=2, grid=3)\nerf\ngroup_pool\ndense(1)",
    pytest.param("group C8\ninput 4 x 4 channels 1\nlift(size=3, b_std=0.1)\nrelu\n"
                 "gconv(size=3)\n", marks=pytest.mark.slow),  # ~5 s; its check: below
], ids=["p4-relu-erf", "so3-relu-erf", "c8-feature-map"])
def test_standalone_module_runs_with_only_jax_and_numpy(spec, tmp_path):
    net = kernelc.compile(spec)
    source = standalone_module(net.source)
    check_generated_source(source)  # the same safety check as the imported form
    assert "from kernelc.runtime" not in source and "import kernelc" not in source
    # only the helpers it reaches (the fast relu maps added ~150 lines, the fixed-shape,
    # memory-sized tiling ~100, the Gram matrices' PSD check ~100, the steerable bases and
    # mixed stencils ~200 where used, the several-process placement and agreement ~90, the
    # precision chain's host half for relu-like maps and the smooth maps' bound ~170, the
    # on-disk Gram matrices of out= ~130, the XLA compilations in a background thread ~20,
    # the per-site roots over their non-unit axes ~15, one pass for the self pairs and the
    # Gram tiles ~35, the argument checks of kernel_fn (get, dtype, devices, out=) ~35, the
    # check of a resumed out= folder's files ~50, the inputs' overflow check ~30; C8 is the
    # longest: 2,575 lines)
    assert len(source.splitlines()) < 2600
    x = np.random.default_rng(1).normal(size=(3,) + net.module.INPUT_SHAPE)
    (tmp_path / "net.py").write_text(source)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "run.py").write_text(_RUN)
    site = _only_jax_and_numpy(tmp_path / "site")
    done = subprocess.run([sys.executable, "-S", "-I", str(tmp_path / "run.py"),
                           str(tmp_path / "net.py"), str(tmp_path / "x.npy"), str(site)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    standalone = json.loads(done.stdout.strip().splitlines()[-1])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        installed = net.kernel_fn(x, dtype="float64")
    for name, gram in installed.items():
        np.testing.assert_allclose(np.array(standalone[name]), gram, rtol=1e-13, atol=1e-15)


def test_a_steerable_standalone_module_passes_the_safety_check():
    """The steerable helpers (bases, couplings, mixed stencils, the feature-map mirror) hold only
    literal tables at the top level, so their inlined copies pass check_generated_source."""
    net = kernelc.compile("group C8\ninput 4 x 4 channels 1\nlift(size=3)\nrelu\ngconv(size=3)\n")
    source = standalone_module(net.source)
    check_generated_source(source)
    assert "def mixed_stencil(" in source and "def mirror_pairs(" in source


def test_standalone_is_deterministic_and_inlines_only_what_is_used():
    net = kernelc.compile("group Z2\ninput 2 x 2 channels 1\nflatten\ndense(3)\nrelu\ndense(1)")
    a, b = standalone_module(net.source), standalone_module(net.source)
    assert a == b
    assert "def stencil(" not in a and "def so3_sample(" not in a and "def sphere_analysis" not in a
    assert "def acos_ratio2(" in a and "def tiled_kernel(" in a


def test_a_module_for_another_runtime_version_is_refused():
    with pytest.raises(InputError, match="generated for kernelc runtime version 0, but the "
                                         f"installed runtime is version {RUNTIME_VERSION}: "
                                         "regenerate it"):
        tiled_kernel(lambda *a: None, (1,), ("vector", 0, None), 4, 1, ((),), runtime_version=0)
