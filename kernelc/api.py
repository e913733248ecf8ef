"""The Python API: ``kernelc.compile(spec)`` runs the whole pipeline and returns a
:class:`CompiledKernel` holding every stage's result (typed graph, derivation, source, module).
"""
from __future__ import annotations

import builtins
import functools
import hashlib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

from .codegen.emit import emit_module
from .compiler.derive import Derivation, derive
from .frontend.ast import Spec
from .frontend.infer import TypedGraph, check


@dataclass
class CompiledKernel:
    """A compiled spec: ``kernel_fn`` plus everything the compiler derived on the way."""

    typed: TypedGraph
    derivation: Derivation
    source: str
    module: types.ModuleType

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

    def __call__(self, x1, x2=None, get=("nngp", "ntk"), **kwargs):
        return self.module.kernel_fn(x1, x2, get, **kwargs)

    def formulas(self, style: str = "unicode") -> Dict[str, dict]:
        """Per layer: the recursion formulas as text in ``style`` (unicode, latex, markdown)
        and as sympy objects."""
        from .explain import layer_formulas
        return layer_formulas(self.derivation, style)

    def explain(self, n: Optional[int] = None, style: str = "unicode", dtype: str = "float32",
                max_memory=None) -> str:
        from .explain import explain
        return explain(self.derivation, n=n, style=style, dtype=dtype, max_memory=max_memory,
                       plan_memory=self.module.plan_memory)

    @functools.cached_property
    def matching_cnn(self) -> "CompiledKernel":
        """The plain CNN with the same filters (lift/gconv -> conv, group_pool -> global mean)."""
        from .compiler.orbit import matching_cnn_spec, require_orbit
        require_orbit(self.typed)
        return compile(matching_cnn_spec(self.spec, self.typed.group.dim))

    def orbit_kernel_fn(self, x1, x2=None, get=("nngp", "ntk"), **kwargs):
        """The same kernels by the orbit-average identity (O): mean_h k(x1, ρ(h) x2) with k
        the matching plain-CNN kernel. Raises SpecError where (O) does not apply."""
        from .compiler.orbit import orbit_average
        return orbit_average(self.matching_cnn.kernel_fn, self.typed.group, x1, x2, get,
                             **kwargs)

    @property
    def plan(self):
        """The plan ops per node: [(node name, layout, [Op, ...]), ...]."""
        return [(nd.name, nd.layout, nd.ops) for nd in self.derivation.nodes]


def load_module(source: str, name: str) -> types.ModuleType:
    """Execute generated source as a fresh module (it is our own output, never user text)."""
    module = types.ModuleType(name)
    module.__file__ = f"<kernelc:{name}>"
    exec(builtins.compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
    return module


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
    return CompiledKernel(typed, der, source, module)
