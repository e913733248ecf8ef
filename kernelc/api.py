"""The Python API: ``kernelc.compile(spec)`` runs the whole pipeline and returns a
:class:`CompiledKernel` holding every stage's result (typed graph, derivation, source, module).
"""
from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Union

import jax
import numpy as np

from .codegen.emit import emit_module
from .compiler.derive import Derivation, derive
from .errors import GeneratedCodeError, InputError, KernelcError
from .families import family_of
from .frontend.ast import Spec
from .frontend.infer import TypedGraph, check
from .frontend.parser import parse_spec
from .frontend.unparse import unparse
from .runtime import HELPER_MODULES, RUNTIME_VERSION
from .runtime import pure
from .runtime.driver import check_get, check_inputs, tiled_kernel


@dataclass
class CompiledKernel:
    """A compiled spec: ``kernel_fn`` plus everything the compiler derived on the way."""

    typed: TypedGraph
    derivation: Derivation
    source: str
    module: types.ModuleType
    #: what :func:`compile` was given besides the spec (``identities``, ``source_name``): with
    #: the spec's text, what a pickled network is rebuilt from
    options: Dict[str, object] = field(default_factory=dict)

    @property
    def spec(self) -> Spec:
        return self.typed.spec

    @property
    def kernel_fn(self):
        return self.module.kernel_fn

    @functools.cached_property
    def network(self):
        """The finite-width network of this spec (:class:`kernelc.network.FiniteNetwork`)."""
        from .network import network
        return network(self.typed)

    @property
    def init_fn(self):
        """``init_fn(key, input_shape=None, width=None, dtype="float32")`` -> params of the
        finite network the kernels describe (see :mod:`kernelc.network`)."""
        return self.network.init

    @property
    def apply_fn(self):
        """``apply_fn(params, x)`` -> outputs of the finite network (see :mod:`kernelc.network`)."""
        return self.network.apply

    def __repr__(self) -> str:
        """One line (the dataclass repr would print the whole generated source)."""
        tg, spec = self.typed, self.spec
        shape = family_of(tg.group).describe_input(tg.input_type)
        n_layers = sum(1 for n in tg.order()
                       if tg.node(n).kind not in ("input", "fanout", "identity"))
        return (f"<CompiledKernel {spec.name}: group {tg.group.name}, input {shape}, "
                f"{n_layers} layers, output {tg.output_type}, NNGP+NTK>")

    def __call__(self, x1, x2=None, get=("nngp", "ntk"), **kwargs):
        return self.module.kernel_fn(x1, x2, get, **kwargs)

    # -- JAX-native kernels (docs/jax.md) -------------------------------------------------------
    @property
    def default_params(self) -> Dict[str, float]:
        """The hyperparameters the kernels take as arguments, at the spec's values:
        ``{'lift1.W_std': 1.2, 'lift1.b_std': 0.1, ...}`` (σ_w and σ_b of every weight layer;
        b_std only where the spec gives a nonzero one). A copy: change it and pass it as
        ``params``."""
        return dict(self.module.DEFAULT_PARAMS)

    def kernel(self, x1, x2=None, get=("nngp", "ntk"), params=None, fast_maps=None):
        """The Gram matrices as a plain JAX function of jax arrays: works under ``jax.jit``,
        ``jax.vmap`` (over inputs) and ``jax.grad`` with respect to ``x1``, ``x2`` and the
        values in ``params`` (a dict like :attr:`default_params`, partial: missing names keep
        the spec's values). Returns jax arrays (a dict for a tuple ``get``), in the inputs'
        dtype (float64 under JAX's x64 mode). All pairs are one batch (no tiles, no memory
        budget, no precision warning): for large Gram matrices use :attr:`kernel_fn`, or
        :meth:`kernel_fn_with` for other hyperparameters (see :mod:`kernelc.runtime.pure`,
        docs/jax.md; the diagonal NTK of relu-like maps has no derivative).

        Called with concrete arrays it compiles itself with pure.safe_compiler_options(); inside
        your own ``jax.jit`` (forward or gradient) pass ``compiler_options=
        safe_compiler_options()`` there: XLA's CPU backend (jaxlib 0.10.2) miscompiles these
        programs with traced hyperparameters with its new loop-fusion emitters (docs/jax.md,
        "Known issue")."""
        shape = self.module.INPUT_SHAPE
        # checked here, outside jit, so that a list or a wrong shape gets kernelc's message
        x1 = pure.as_inputs(x1, "x1", shape)
        x2 = None if x2 is None else pure.as_inputs(x2, "x2", shape)
        single, names = check_get(get)
        get = names[0] if single else names
        if fast_maps not in (None, True, False):
            raise InputError(f"fast_maps must be None, True or False, got {fast_maps!r}")
        # names and types checked here too: under the jit below a text or complex value would
        # fail inside JAX's argument handling, or run (σ_w = 1j gives σ_w² = -1)
        pure.resolve_params(self.module.DEFAULT_PARAMS, params)
        traced = any(isinstance(leaf, jax.core.Tracer)
                     for leaf in jax.tree_util.tree_leaves((x1, x2, params)))
        if traced:  # inside the caller's jit/grad/vmap: traced into their program
            m = self.module
            return pure.kernel(m._propagate, m.INPUT_SHAPE, m.OUTPUT_MIRROR,
                               m.DEFAULT_PARAMS, x1, x2, get, params, fast_maps)
        return self._jitted_kernel(x1, x2, get=get, params=params, fast_maps=fast_maps)

    @functools.cached_property
    def _jitted_kernel(self):
        # jit (one XLA program) rather than op-by-op dispatch: tens of times faster on first
        # use (only for concrete arguments: a nested jit may not set compiler options). The
        # options are pure.safe_compiler_options(): XLA's CPU backend (jaxlib 0.10.2)
        # miscompiles these programs with traced hyperparameters with its new emitters
        m = self.module
        return jax.jit(functools.partial(pure.kernel, m._propagate, m.INPUT_SHAPE,
                                         m.OUTPUT_MIRROR, m.DEFAULT_PARAMS),
                       static_argnames=("get", "fast_maps"),
                       compiler_options=pure.safe_compiler_options())

    def kernel_fn_with(self, params):
        """The tiled ``kernel_fn`` (same arguments, numpy results) at other hyperparameter
        values: ``params`` a dict like :attr:`default_params` of plain numbers (missing names
        keep the spec's values). Each call builds a new function, compiled on first use."""
        values = pure.resolve_params(self.module.DEFAULT_PARAMS, params)
        try:
            values = {k: float(v) for k, v in values.items()}
        except Exception:  # noqa: BLE001 - a tracer or an array: not a constant
            raise KernelcError("kernel_fn_with takes plain numbers (the tiled driver compiles "
                              "them in); to differentiate, use .kernel(..., params=...)") from None
        bad = sorted(k for k, v in values.items() if not np.isfinite(v))
        if bad:
            raise InputError(f"hyperparameter(s) {', '.join(bad)} must be finite, got "
                             + ", ".join(f"{values[k]!r}" for k in bad))
        m = self.module
        fn, _ = tiled_kernel(functools.partial(m._propagate, params=values), m.INPUT_SHAPE,
                             m.OUTPUT_MIRROR, m.BYTES_PER_PAIR, m.OUTPUT_ENTRIES,
                             m.STATS_SHAPES, runtime_version=RUNTIME_VERSION,
                             tile_working_set=m.TILE_WORKING_SET)
        return fn

    def __reduce__(self):
        """Pickled as the spec's text and the compile options; unpickling compiles it again
        (the module is code made at run time, which pickle cannot store)."""
        spec = self.spec
        text = spec.source or unparse(spec)
        return (_rebuild, (text, spec.filename, dict(self.options)))

    def _repr_markdown_(self) -> str:
        """Jupyter's display: the ``explain`` report in Markdown (formulas as ``$LaTeX$``)."""
        return self.explain(style="markdown")

    def _repr_latex_(self) -> str:
        """Jupyter's (and nbconvert's) LaTeX display: each layer's NNGP and NTK recursion as a
        display equation."""
        from .explain import formula_equations
        return "\n".join(f"$${tex}$$" for tex in formula_equations(self.derivation))

    def formulas(self, style: str = "unicode") -> Dict[str, dict]:
        """Per layer: the recursion formulas as text in ``style`` (unicode, latex, markdown)
        and as sympy objects; the table displays itself in a notebook (Markdown and LaTeX)."""
        from .explain import layer_formulas
        return layer_formulas(self.derivation, style)

    def explain(self, n: Optional[int] = None, style: str = "unicode", dtype: str = "float32",
                max_memory=None, calibrate: bool = False) -> str:
        """The derivation report (:func:`kernelc.explain.explain`); with ``n``, the cost of an
        N×N Gram matrix and its wall time: a rough estimate from a stored throughput, or with
        ``calibrate=True`` timed on this machine on one tile of random inputs (this compiles
        the network's passes and runs them: seconds to minutes)."""
        from .explain import calibrate_kernel, explain
        timer = None
        if calibrate:
            def timer(max_pairs):
                return calibrate_kernel(self.kernel_fn, self.module.INPUT_SHAPE, max_pairs,
                                        dtype, max_memory, self.derivation.decisions["S"].applied)
        return explain(self.derivation, n=n, style=style, dtype=dtype, max_memory=max_memory,
                       plan_memory=self.module.plan_memory, calibrate=timer)

    @functools.cached_property
    def matching_cnn(self) -> "CompiledKernel":
        """The plain CNN with the same filters (lift/gconv -> conv, group_pool -> global mean)."""
        from .families.lattice.orbit import matching_cnn_spec, require_orbit
        require_orbit(self.typed)
        return compile(matching_cnn_spec(self.spec, self.typed.group.dim))

    def orbit_kernel_fn(self, x1, x2=None, get=("nngp", "ntk"), **kwargs):
        """The same kernels by the orbit-average identity (O): mean_h k(x1, ρ(h) x2) with k
        the matching plain-CNN kernel. Raises SpecError where (O) does not apply."""
        from .families.lattice.orbit import orbit_average
        # checked against this network's input here: the orbit is built before the matching
        # CNN's kernel_fn sees the inputs (an empty or misshapen set failed inside numpy)
        shape = self.module.INPUT_SHAPE
        x1 = check_inputs(x1, "x1", shape)
        x2 = None if x2 is None else check_inputs(x2, "x2", shape)
        check_get(get)
        return orbit_average(self.matching_cnn.kernel_fn, self.typed.group, x1, x2, get,
                             **kwargs)

    @property
    def fast_map_layers(self) -> tuple:
        """The nonlinearity layers whose kernel maps ``kernel_fn(fast_maps=...)`` switches: those
        with a map whose proven fast-angle bound holds (``KernelMap.fast_angles``: relu,
        leaky_relu(α ≥ 0), erf, gelu; docs/math/fast-maps.md), in program order. Empty:
        ``fast_maps`` changes nothing for this network (the CLI's --fast-maps/--exact-maps refuse it)."""
        return tuple(nd.name for nd in self.derivation.nodes
                     if nd.formulas is not None
                     and any(getattr(m, "fast_angles", False) for m in nd.formulas.reduced))

    @property
    def plan(self):
        """The plan ops per node: [(node name, layout, [Op, ...]), ...]."""
        return [(nd.name, nd.layout, nd.ops) for nd in self.derivation.nodes]


# -- the safety check of generated modules ----------------------------------------------------
# A generated module is our own output, but it embeds text from the spec and its file name (in
# the docstring and comments, escaped by kernelc.codegen.emit). Before it is executed, its syntax
# tree is checked against what the code generator emits, so that text which escaped a docstring
# or a comment can never run: only the statements below may appear at the top level (nothing
# runs at import time except imports, constant tables and definitions), and no code anywhere may
# import other modules or use the builtins that run code or touch files.
# It is a check against text escaping into code, not a sandbox for hostile generated code.
#: (tqdm: the driver's optional progress bar, imported inside a try/except ImportError;
#: hashlib, json: runtime.store's fingerprint and run description)
_IMPORTABLE = ("os", "sys", "time", "math", "functools", "warnings", "hashlib", "json", "numpy",
               "jax", "tqdm")
#: ``from X import ...``: not os and sys, whose uses are checked by attribute name below.
_FROM_IMPORTABLE = ("time", "math", "functools", "numpy", "jax",
                    "concurrent.futures")  # the driver compiles in a thread
#: ``from X import names``: the runtime package's helper modules (and kernelc.errors, which a
#: standalone module imports in a try/except ImportError block)
#: kernelc.hostmem: the runtime's default memory budget reads the host's memory files through it
_IMPORT_FROM = {"kernelc.errors", "kernelc.hostmem", "kernelc.runtime",
                "kernelc.runtime.errors"} | set(HELPER_MODULES)
#: The one top-level call a module makes: the runtime's driver around its _propagate, with names
#: and constants as arguments.
_DRIVER_CALLS = {"tiled_kernel"}
_FORBIDDEN_NAMES = {"__import__", "eval", "exec", "compile", "open", "breakpoint", "globals",
                    "locals", "vars", "input", "setattr", "delattr", "__builtins__", "__loader__",
                    "__spec__", "memoryview"}
#: The attributes of os and sys the runtime may use (read the environment and machine, print).
_MODULE_ATTRS = {
    "os": {"environ", "getenv", "sysconf", "sysconf_names", "cpu_count", "sched_getaffinity",
           "getpid", "path", "name", "sep", "linesep", "pathsep", "devnull", "fspath",
           "get_terminal_size", "makedirs",  # makedirs: kernel_fn(out=FOLDER) (runtime.store)
           "PathLike"},  # PathLike: isinstance check of kernel_fn(out=...) (runtime.driver)
    "sys": {"stderr", "stdout", "platform", "version_info", "hexversion", "maxsize", "float_info",
            "int_info", "byteorder", "flags", "implementation", "getrecursionlimit", "getsizeof"},
}
#: Decorators (bare, or called with constant arguments) of generated functions and classes.
_DECORATORS = {"jax.jit", "functools.lru_cache", "functools.cache", "functools.partial",
               "functools.wraps", "jax.custom_jvp", "jax.custom_vjp", "staticmethod",
               "classmethod", "property"}
#: Calls allowed in a top-level assignment (constant tables such as the hexagonal SITE_MASK).
_TABLE_CALLS = {"np.array", "np.asarray", "jnp.array", "jnp.asarray"}
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _dotted(node) -> Optional[str]:
    """``'a.b.c'`` for a chain of attribute accesses on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id] + parts[::-1])


def _importable(module: Optional[str], allowed=_IMPORTABLE) -> bool:
    return bool(module) and any(module == m or module.startswith(m + ".") for m in allowed)


def _is_literal(node) -> bool:
    """Constants and containers, arithmetic on them, and dotted names (``np.float32``)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or _is_literal(k) for k in node.keys) and \
            all(_is_literal(v) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_literal(node.left) and _is_literal(node.right)
    return _dotted(node) is not None


def _is_table(node) -> bool:
    """A literal, or ``np.array(<literal>, dtype=np.float32)`` and the like."""
    if isinstance(node, ast.Call):
        return (_dotted(node.func) in _TABLE_CALLS and all(_is_literal(a) for a in node.args)
                and all(k.arg is not None and _is_literal(k.value) for k in node.keywords))
    return _is_literal(node)


def _is_driver_call(stmt: ast.Assign) -> bool:
    """``kernel_fn, plan_memory = tiled_kernel(_propagate, NAME, ..., key=constant)``."""
    call = stmt.value
    names = [t for target in stmt.targets
             for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id in _DRIVER_CALLS and all(isinstance(n, ast.Name) for n in names)
            and all(isinstance(a, ast.Name) or _is_literal(a) for a in call.args)
            and all(k.arg is not None and _is_literal(k.value) for k in call.keywords))


def _check_decorators(node) -> Optional[str]:
    for dec in node.decorator_list:
        call = isinstance(dec, ast.Call)
        name = _dotted(dec.func if call else dec)
        if name not in _DECORATORS or (call and not (
                all(_is_literal(a) for a in dec.args)
                and all(k.arg is not None and _is_literal(k.value) for k in dec.keywords))):
            return f"decorator @{ast.unparse(dec)}"
    return None


def _check_function(node) -> Optional[str]:
    """Definitions run their decorators, defaults and annotations at import time."""
    bad = _check_decorators(node)
    if bad:
        return bad
    a = node.args
    for default in a.defaults + [d for d in a.kw_defaults if d is not None]:
        if not _is_literal(default):
            return f"default value {ast.unparse(default)} of {node.name}()"
    notes = [arg.annotation for arg in a.posonlyargs + a.args + a.kwonlyargs
             + [x for x in (a.vararg, a.kwarg) if x is not None]] + [node.returns]
    for note in notes:
        if note is not None and any(isinstance(n, (ast.Call, ast.Lambda, ast.NamedExpr))
                                    for n in ast.walk(note)):
            return f"annotation {ast.unparse(note)} of {node.name}()"
    return None


def _check_statement(stmt, in_class: bool = False) -> Optional[str]:
    """None when ``stmt`` may appear at the top level (or in a class body), else what it is."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass)):
        return None  # the modules themselves are checked by _check_everywhere
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
            and isinstance(stmt.value.value, str) and in_class:
        return None
    if isinstance(stmt, ast.Assign):
        if all(isinstance(t, ast.Name) for t in stmt.targets) and _is_table(stmt.value):
            return None
        if not in_class and _is_driver_call(stmt):
            return None
        return f"assignment {ast.unparse(stmt)[:80]}"
    if isinstance(stmt, ast.FunctionDef):
        return _check_function(stmt)
    if isinstance(stmt, ast.ClassDef):
        if stmt.keywords or not all(_dotted(b) for b in stmt.bases):
            bases = ", ".join(map(ast.unparse, stmt.bases + stmt.keywords))
            return f"class {stmt.name}({bases})"
        bad = _check_decorators(stmt)
        if bad:
            return bad
        for inner in stmt.body:
            bad = _check_statement(inner, in_class=True)
            if bad:
                return bad
        return None
    if isinstance(stmt, ast.Try) and not in_class:
        for handler in stmt.handlers:
            caught = handler.type
            names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
            if not all(isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in names):
                return "try/except other than 'except ImportError'"
        for inner in stmt.body + [s for h in stmt.handlers for s in h.body] + stmt.orelse \
                + stmt.finalbody:
            bad = _check_statement(inner)
            if bad:
                return bad
        return None
    return f"statement {ast.unparse(stmt).splitlines()[0][:80]!r}"


def _check_everywhere(tree) -> Optional[str]:
    """Anywhere in the module: only the allowed imports, none of the builtins that run code or
    open files, and only the listed attributes of os and sys (which are never renamed or
    passed around)."""
    qualified = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}: "
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _importable(alias.name):
                    return where + f"import of {alias.name}"
                if alias.name in _MODULE_ATTRS and alias.asname not in (None, alias.name):
                    return where + f"import of {alias.name} as {alias.asname}"
        elif isinstance(node, ast.ImportFrom):
            if node.level or not (_importable(node.module, _FROM_IMPORTABLE)
                                  or node.module in _IMPORT_FROM) \
                    or any(a.name == "*" for a in node.names):
                return where + f"import from {'.' * node.level}{node.module or ''}"
        elif isinstance(node, ast.Name) and node.id in _FORBIDDEN_NAMES:
            return where + f"use of {node.id}"
        elif isinstance(node, ast.Name) and node.id in _MODULE_ATTRS and id(node) not in qualified:
            return where + f"use of {node.id} other than {node.id}.<attribute>"
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in _MODULE_ATTRS \
                    and node.attr not in _MODULE_ATTRS[node.value.id]:
                return where + f"use of {node.value.id}.{node.attr}"
            if node.attr in ("__globals__", "__builtins__", "__subclasses__", "__code__",
                             "__import__"):
                return where + f"use of .{node.attr}"
    return None


def check_generated_source(source: str, name: str = "<generated>") -> ast.Module:
    """Parse a generated module and check it against what kernelc's code generator emits; the
    syntax tree to execute, or :class:`GeneratedCodeError` saying what is not allowed.

    The top level may hold only the module docstring, imports of jax/numpy/os/sys/time/math/
    functools (and ``from kernelc.errors import ...`` in a ``try/except ImportError``),
    assignments of constant tables, and function and class definitions whose decorators and
    defaults are constants; no top-level call runs. Anywhere, only those modules may be imported
    and the builtins that run code or open files (eval, exec, __import__, open, ...) may not
    appear.
    """
    hint = ("; refusing to run it (this is a bug in kernelc: please report it with the spec and "
            "its file name)")
    try:
        tree = ast.parse(source, filename=name)
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes
        where = f"line {exc.lineno}: " if getattr(exc, "lineno", None) else ""
        raise GeneratedCodeError(f"the generated module {name} does not parse ({where}"
                                 f"{getattr(exc, 'msg', exc)})" + hint) from None
    body = tree.body
    if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        raise GeneratedCodeError(f"the generated module {name} does not start with its "
                                 "docstring" + hint)
    for stmt in body[1:]:
        bad = _check_statement(stmt)
        if bad:
            line = f"line {stmt.lineno}: " if not bad.startswith("line ") else ""
            raise GeneratedCodeError(f"the generated module {name} has a top-level {line}{bad}, "
                                     "which kernelc never emits" + hint)
    bad = _check_everywhere(tree)
    if bad:
        raise GeneratedCodeError(f"the generated module {name} has {bad}, which kernelc never "
                                 "emits" + hint)
    return tree


def load_module(source: str, name: str) -> types.ModuleType:
    """Execute generated source as a fresh module, after :func:`check_generated_source`."""
    module = types.ModuleType(name)
    module.__file__ = f"<kernelc:{name}>"
    tree = check_generated_source(source, module.__file__)
    exec(builtins.compile(tree, module.__file__, "exec"), module.__dict__)  # noqa: S102
    return module


def _rebuild(text: str, filename: str, options: dict) -> CompiledKernel:
    """A pickled :class:`CompiledKernel` compiled again from its spec text."""
    return compile(parse_spec(text, filename), **options)


def compile(spec: Union[str, Path, Spec], *, identities: Optional[Dict[str, bool]] = None,
            source_name: Optional[str] = None) -> CompiledKernel:
    """Compile a spec (a path to a ``.kc`` file, spec text, or a parsed Spec).

    ``identities``: switch symmetry identities off for testing, e.g. ``{"R": False}``.
    """
    typed = check(spec)
    der = derive(typed, identities)
    if source_name is None:
        fname = typed.spec.filename
        source_name = Path(fname).name if fname != "<spec>" else "<spec text>"
    source = emit_module(der, source_name)
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    module = load_module(source, f"kernelc_generated_{typed.spec.name}_{digest}")
    options = {"source_name": source_name}
    if identities is not None:
        options["identities"] = dict(identities)
    return CompiledKernel(typed, der, source, module, options)
