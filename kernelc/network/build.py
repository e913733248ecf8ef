"""Typed graph -> the finite-width network the kernels describe: ``init_fn`` and ``apply_fn``.

The walk is the same as the kernel compiler's: nodes in topological order, one look-up per node
kind in the finite layers of the graph's family (:func:`kernelc.network.layers.finite_layers`).
Everything static (filter expansion indices, masks, φ) is prepared once here in numpy;
``apply_fn`` is pure JAX and jit-friendly. :class:`FiniteNetwork` is the lattice family's
network and the base class of the other families' (:data:`FAMILY_NETWORKS`).

Widths. The kernels assume every hidden layer is infinitely wide. ``init_fn(key, input_shape,
width)`` gives every hidden weight layer (lift, gconv, conv, dense) ``width`` output channels;
a weight layer with no weight layer after it (the readout) keeps its declared count (``dense(n)``
its n, a final lift/gconv/conv its ``width=`` if the spec sets one). With ``width=None`` the
spec's own ``width=`` values are used (an error names the first hidden layer without one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import networkx as nx
import numpy as np

from ..errors import InputError, KernelcError
from ..frontend.infer import TypedGraph, check
from ..families import Family, family_of
from ..frontend.family_kinds import layer_kinds
from .layers import FiniteLayer, finite_layers


def typed_graph(obj):
    """A TypedGraph from a TypedGraph, a CompiledKernel, a Spec, a path or spec text."""
    if isinstance(obj, TypedGraph):
        return obj
    if hasattr(obj, "typed"):
        return obj.typed
    return check(obj)


@dataclass(eq=False)
class FiniteNetwork:
    """The finite-width network of a typed graph; ``init``/``apply`` are init_fn/apply_fn."""

    typed: Any
    _prepared: Dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        g = self.typed
        self.group = self.typed.group
        self.check_layer_table()
        self.dim = self.group.dim
        self.order: List[str] = g.order()
        self.parameterization = self.typed.spec.parameterization
        self.input_box = tuple(self.typed.input_type.shape)
        self.input_channels = int(self.typed.input_type.channels)
        mask = np.asarray(self.group.domain_mask(self.input_box), dtype=bool)
        self._mask = None if mask.all() else mask
        self.prepare_layers()
        self.final = self._final_weight_layers()

    def prepare_layers(self) -> None:
        """Each layer's static data (its table entry's ``prepare``), made once."""
        table = self.layer_table
        for n in self.order:
            layer = table.get(self.typed.node(n).kind)
            if layer is not None and layer.prepare is not None:
                self._prepared[n] = layer.prepare(self, n)

    @property
    def layer_table(self) -> Dict[str, FiniteLayer]:
        """kind -> FiniteLayer (init, apply) of the group's family."""
        return finite_layers(family_of(self.group))

    def check_layer_table(self) -> None:
        """KernelcError naming every layer kind of the graph this network cannot build."""
        g = self.typed
        missing = sorted({g.node(n).kind for n in g.order()} - set(self.layer_table)
                         - {"input"})
        if missing:
            raise KernelcError(f"no finite-width {self.group.name} network for layer kind(s): "
                               f"{', '.join(missing)}")

    # -- static structure ---------------------------------------------------------------------
    def hp(self, node: str) -> dict:
        return self.typed.node(node).hp

    def name(self, node: str) -> str:
        return self.typed.node(node).name

    def out_type(self, node: str):
        return self.typed.node(node).out

    def prepared(self, node: str):
        """The static data the layer's ``prepare`` made (a filter expansion, φ)."""
        return self._prepared[node]

    def _is_weight(self, kind: str) -> bool:
        """A layer with fresh weights (its kind's category is "weight"): it has a width."""
        entry = layer_kinds(family_of(self.group)).get(kind)
        return entry is not None and entry.parametric

    def _final_weight_layers(self) -> set:
        g = self.typed
        weights = {n for n in self.order if self._is_weight(g.node(n).kind)}
        return {n for n in weights if not (nx.descendants(g.graph, n) & weights)}

    # -- hexagonal domains ----------------------------------------------------------------------
    def _masked(self, box) -> bool:
        return self._mask is not None and tuple(box) == self.input_box

    def site_count(self, box) -> int:
        """Sites of the domain inside ``box`` (the hexagon's for a masked input-sized box)."""
        return int(self._mask.sum()) if self._masked(box) else int(np.prod(box))

    def site_index(self, box) -> Optional[np.ndarray]:
        """Flat indices of the domain's sites in ``box``, or None when it is the whole box."""
        return np.flatnonzero(self._mask.reshape(-1)) if self._masked(box) else None

    def mask(self, y, box, group_axis: bool):
        """Zero a box/group signal outside a masked (hexagonal) domain, as the kernel does."""
        if not self._masked(box):
            return y
        m = self._mask.reshape(self._mask.shape + (1,) * (2 if group_axis else 1))
        return y * m.astype(np.float32)

    # -- widths ---------------------------------------------------------------------------------
    def channels(self, width: Optional[int] = None, input_channels: Optional[int] = None
                 ) -> Dict[str, int]:
        """Output channel count of every node for the given hidden ``width``."""
        bad = isinstance(width, bool) or not isinstance(width, (int, np.integer))
        if width is not None and (bad or width < 1):
            raise InputError(f"width must be a positive integer, got {width!r}")
        g = self.typed
        out: Dict[str, int] = {}
        for n in self.order:
            data = g.node(n)
            kind = data.kind
            ins = [out[i] for i in g.inputs(n)]
            if kind == "input":
                out[n] = self.input_channels if input_channels is None else int(input_channels)
            elif self._is_weight(kind):
                out[n] = self._layer_width(n, kind, width)
            else:
                layer = self.layer_table.get(kind)
                count = layer.channels if layer is not None else None
                out[n] = count(self, n, ins) if count is not None else ins[0]
        return out

    def _layer_width(self, node, kind, width) -> int:
        hp = self.hp(node)
        declared = hp.get("width")  # dense: its output count (always set); others: width= or None
        if node in self.final and declared is not None:
            return int(declared)    # the readout keeps its declared size
        if width is not None:
            return int(width)
        if declared is not None:
            return int(declared)
        data = self.typed.node(node)
        raise KernelcError(f"layer {data.name} has no width= in the spec; pass a width to "
                           "init_fn (it applies to every hidden weight layer)", data.span)

    # -- init / apply ---------------------------------------------------------------------------
    def _check_input_shape(self, input_shape) -> int:
        if input_shape is None:
            return self.input_channels
        shape = tuple(int(s) for s in input_shape)
        d = self.dim
        if len(shape) == d + 2:
            shape = shape[1:]  # a leading batch axis is allowed (and ignored)
        if len(shape) == d and self.input_channels == 1:
            shape = shape + (1,)
        if len(shape) != d + 1 or shape[:d] != self.input_box:
            raise InputError(f"input_shape must be ({', '.join(map(str, self.input_box))}, C) "
                             f"(optionally with a leading batch axis), got {tuple(input_shape)}")
        if shape[-1] != self.input_channels:
            raise InputError(f"the spec declares {self.input_channels} input channel(s), "
                             f"input_shape has {shape[-1]}")
        return shape[-1]

    def param_shapes(self, width: Optional[int] = None, input_channels: Optional[int] = None
                     ) -> Dict[str, Dict[str, Tuple[Tuple[int, ...], float]]]:
        """{layer name: {"W"/"b": (shape, standard deviation)}} for hidden ``width``."""
        chans = self.channels(width, input_channels)
        g = self.typed
        out = {}
        for n in self.order:
            layer = self.layer_table.get(g.node(n).kind)
            if layer is not None and layer.init is not None:
                out[self.name(n)] = layer.init(self, n, chans[g.inputs(n)[0]], chans[n])
        return out

    def init(self, key, input_shape=None, width: Optional[int] = None, dtype="float32"):
        """Parameters ``{layer name: {"W": ..., "b": ...}}`` of the network with hidden ``width``.

        ``key``: a jax PRNG key (any implementation; ``jax.random.key(s, impl="rbg")`` compiles
        fastest); ``input_shape``: (*box, C) or (N, *box, C), checked against the spec (default:
        the spec's); ``dtype``: parameter dtype (float64 needs an x64 context). All parameters
        come from one ``jax.random.normal`` draw (one RNG kernel to compile, not one per layer),
        split in layer order and scaled by their standard deviations.
        """
        import jax
        import jax.numpy as jnp
        c_in = self._check_input_shape(input_shape)
        shapes = self.param_shapes(width, c_in)
        try:  # None would read as float64
            readable = None if dtype is None else jnp.dtype(dtype)
        except TypeError:
            readable = None
        if readable is None or not jnp.issubdtype(readable, jnp.floating):
            raise InputError(f"dtype must be a floating dtype (float32, float64, bfloat16, "
                             f"float16), got {dtype!r}")
        dtype = readable
        if jax.dtypes.canonicalize_dtype(dtype) != dtype:  # jax would return float32 instead
            raise InputError(f"dtype={dtype} needs JAX's 64-bit mode: draw the parameters "
                             "inside `with jax.enable_x64(True):` (or set JAX_ENABLE_X64=1)")
        sizes = [int(np.prod(shape)) for layer in shapes.values() for shape, _ in layer.values()]
        flat = jax.random.normal(key, (max(1, sum(sizes)),), dtype)
        params: Dict[str, Dict[str, Any]] = {}
        offset = 0
        for name, layer in shapes.items():
            params[name] = {}
            for pname, (shape, std) in layer.items():
                size = int(np.prod(shape))
                value = flat[offset:offset + size].reshape(shape)
                params[name][pname] = value * std if std != 1.0 else value
                offset += size
        return params

    def apply(self, params, x):
        """The network's output for inputs ``x`` of shape (N, *box, C) (channels last; single-
        channel inputs may omit the channel axis). Output layouts: (N, D) vectors, (N, *box,
        |H|, D) group signals, (N, *box, D) box signals. On a masked (hexagonal) domain inputs
        are zeroed outside it first, and every box/group signal on the input box after each
        layer, exactly as the kernels treat them."""
        return self.features(params, x, self.typed.output_node)

    def features(self, params, x, node: str):
        """The signal at ``node`` (a node id of the layer graph) for inputs ``x``."""
        import jax.numpy as jnp
        x = jnp.asarray(x)
        d = self.dim
        if x.ndim == d + 1 and self.input_channels == 1 and tuple(x.shape[1:]) == self.input_box:
            x = x[..., None]
        if x.ndim != d + 2 or tuple(x.shape[1:1 + d]) != self.input_box:
            raise InputError(f"x must have shape (N, {', '.join(map(str, self.input_box))}, C), "
                             f"got {tuple(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        g = self.typed
        needed = nx.ancestors(g.graph, node) | {node}
        values: Dict[str, Any] = {}
        for n in self.order:
            if n not in needed:
                continue
            kind = g.node(n).kind
            if kind == "input":
                # signals vanish outside the domain (the hexagon of p6), as in the kernels
                values[n] = self.mask(x, self.input_box, False)
                continue
            ins = [values[i] for i in g.inputs(n)]
            values[n] = self.layer_table[kind].apply(self, n, params.get(self.name(n)), ins)
        return values[node]

    @property
    def readout_node(self) -> Optional[str]:
        """The output node when it is a dense layer (the readout), else None."""
        out = self.typed.output_node
        return out if self.typed.node(out).kind == "dense" else None

    def readout_nngp(self, params, x1, x2=None):
        """E over the readout layer's weights of (1/n_out) f(x1)·f(x2)ᵀ, all other weights
        fixed: σ_w²/n h(x1)·h(x2)ᵀ + σ_b² with h the n features entering the readout (the same
        in both parameterisations). A Monte Carlo NNGP estimate whose spread falls like
        n^(-1/2), unlike the raw output covariance. Needs a dense output layer."""
        out = self.readout_node
        if out is None:
            raise KernelcError("readout_nngp needs a network whose output layer is dense")
        src = self.typed.inputs(out)[0]
        h1 = self.features(params, x1, src)
        h2 = h1 if x2 is None else self.features(params, x2, src)
        hp = self.hp(out)
        return hp["W_std"] ** 2 * (h1 @ h2.T) / h1.shape[-1] + hp["b_std"] ** 2

    def output_shape(self, n: int = 1, width: Optional[int] = None) -> Tuple[int, ...]:
        t = self.typed.output_type
        c = self.channels(width)[self.typed.output_node]
        if t.domain == "vector":
            return (n, c)
        if t.domain == "group":
            return (n,) + tuple(t.shape) + (t.group_order, c)
        return (n,) + tuple(t.shape) + (c,)


#: Each family's network class (a FiniteNetwork), registered by the family's network module.
FAMILY_NETWORKS: Dict[Family, type] = {}


def register_network(family: Family, cls: type) -> None:
    """Make ``cls`` (FiniteNetwork or a subclass) the finite network of ``family``'s graphs."""
    if family in FAMILY_NETWORKS:
        raise KernelcError(f"the network of family '{family.name}' is registered twice")
    FAMILY_NETWORKS[family] = cls
