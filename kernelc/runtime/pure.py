"""The JAX-native form of a generated module's kernels: one traceable function of jax arrays.

``kernel(propagate, ...)`` computes the same Gram matrices as the tiled ``kernel_fn`` of
:mod:`kernelc.runtime.driver`, but as a plain JAX computation: no numpy conversion, no tiles,
no progress, no checks that read array values. So it composes with ``jax.jit``, ``jax.vmap``
(over inputs) and ``jax.grad`` (with respect to the inputs and to the hyperparameters, which
``_propagate`` takes as its ``params`` argument: ``params['lift1.W_std']``, defaults in the
module's DEFAULT_PARAMS). All pairs are one batch, so memory grows with N1·N2 times the widest
layer's entries: for large Gram matrices use the tiled ``kernel_fn`` (docs/jax.md).

The computation is the driver's: a self pass over each input set gives the per-site variances
K[g,g](f,f) that the nonlinearities read (and, for a Gram matrix of x1 with itself, the
diagonal entries, as self pairs whose correlation-1 sites are exact), then one pass over the
other pairs (i, j). Differences from ``kernel_fn``, on purpose:

* the float32 rounding-error estimate (``track_precision``, docs/precision.md) is not traced:
  it records through host callbacks and has no derivative; no PrecisionWarning is given;
* the dtype is the inputs' (float64 needs JAX's x64 mode, e.g. ``with jax.enable_x64(True):``
  or :func:`kernelc.runtime.driver.x64_context`); global JAX flags are never set here;
* at a self pair (the diagonal of a Gram matrix) relu-like maps sit at correlation 1, where
  the derivative of K̇ (hence of the diagonal NTK) is infinite: its gradient there is the
  guarded helpers' finite one-sided value, not a derivative. Off-diagonal entries are smooth
  (their own correlations are below 1; the variances they read are E[φ(u)²], smooth in the
  input) and differentiate exactly.
"""
from collections.abc import Mapping

import functools

import numpy as np
import jax.numpy as jnp

from kernelc.runtime.driver import CPU_COMPILER_OPTIONS, check_get, refused_options
from kernelc.runtime.errors import InputError
from kernelc.runtime.layouts import mirror_pairs
from kernelc.runtime.maps import fast_maps as fast_maps_context
from kernelc.runtime.maps import precision_tracking

__all__ = ["kernel", "resolve_params", "as_inputs", "SAFE_COMPILER_OPTIONS",
           "safe_compiler_options"]

#: ``jax.jit(..., compiler_options=safe_compiler_options())``: XLA's CPU backend of jaxlib
#: 0.10.2 miscompiles a _propagate whose hyperparameters are traced arguments (not constants)
#: with its new loop-fusion emitters: on a 4×4 p4 relu network the NNGP came out 3e-2 to
#: 4.5e-2 off (3 input sets), and optimization level 0 (the earlier workaround) miscompiled a
#: jitted gradient instead (2e5 off on 1 of 3). With XLA's older emitters (and no YNNPACK
#: fusions: the driver's CPU_COMPILER_OPTIONS, also faster) both agree with op-by-op execution
#: to 2e-16 and 8e-16 (tests/codegen/test_jax_native.py; docs/jax.md, "Known issue").
#: CompiledKernel.kernel compiles with them; a caller's own jax.jit must pass them too.
SAFE_COMPILER_OPTIONS = dict(CPU_COMPILER_OPTIONS)  # a copy: clearing the driver's keeps these


@functools.lru_cache(maxsize=None)
def _accepted_options(names):
    import jax
    options = {k: SAFE_COMPILER_OPTIONS[k] for k in names}
    lowered = jax.jit(lambda a: a + 1).trace(jnp.zeros(2, jnp.float32)).lower()
    while options:
        try:
            lowered.compile(compiler_options=options)
            break
        except Exception as exc:  # noqa: BLE001 - jaxlib's error type differs across versions
            unknown = refused_options(exc, options)
            if not unknown:
                return {}
            options = {k: v for k, v in options.items() if k not in unknown}
    return options


def safe_compiler_options():
    """SAFE_COMPILER_OPTIONS less those the installed jaxlib does not know (jax < 0.8 lacks
    the YNNPACK one), found once per process by compiling a tiny program."""
    return dict(_accepted_options(tuple(sorted(SAFE_COMPILER_OPTIONS))))


def resolve_params(defaults, params=None, dtype=None):
    """The hyperparameters ``_propagate`` reads: ``defaults`` (a module's DEFAULT_PARAMS) with
    the entries of ``params`` in their place. Each value is a scalar: a Python number (kept, so
    it takes the inputs' dtype), or an array or tracer of shape () (cast to ``dtype`` when
    given). An unknown name or a non-scalar value is an InputError (names are checked, values
    are not read: they may be tracers)."""
    if params is None:
        return dict(defaults)
    if not isinstance(params, Mapping):
        raise InputError(f"params must be a dict of hyperparameters by name (e.g. "
                         f"{{'{next(iter(defaults), 'dense1.W_std')}': 1.0}}), got "
                         f"{type(params).__name__}")
    unknown = sorted(str(k) for k in params if k not in defaults)
    if unknown:
        known = ", ".join(defaults) or "none"
        raise InputError(f"unknown hyperparameter(s) {', '.join(unknown)}; this network's are: "
                         f"{known} (a layer's b_std is one only when the spec gives it a "
                         "nonzero value: a layer without bias has none)")
    out = dict(defaults)
    for key, value in params.items():
        if isinstance(value, bool) or not (isinstance(value, (int, float))
                                           or hasattr(value, "shape")):
            raise InputError(f"hyperparameter {key} must be a number or a scalar array, got "
                             f"{type(value).__name__}")
        if not isinstance(value, (int, float)):
            kind = getattr(getattr(value, "dtype", None), "kind", None)
            if kind not in ("i", "u", "f"):  # complex, bool, text: no σ (σ² of 1j is -1)
                raise InputError(f"hyperparameter {key} must be a real number, got "
                                 f"{type(value).__name__} of dtype {getattr(value, 'dtype', '?')}")
            if np.shape(value) != ():
                raise InputError(f"hyperparameter {key} must be a scalar, got shape "
                                 f"{tuple(np.shape(value))}")
            value = jnp.asarray(value, dtype) if dtype is not None else value
        out[key] = value
    return out


def as_inputs(x, name, shape):
    """``x`` as a jax array of (N, *shape) (a single-channel input may omit the channel axis),
    in a floating dtype (integers become the default float); InputError saying why not. Only
    shapes and dtypes are checked (tracers have them); values are not read."""
    if x is None:
        raise InputError(f"{name} is missing")
    try:
        x = jnp.asarray(x)
    except Exception as exc:  # noqa: BLE001 - anything that is not array-like
        raise InputError(f"{name} is not an array: {exc}") from None
    if jnp.issubdtype(x.dtype, jnp.complexfloating) or not (
            jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise InputError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if shape[-1] == 1 and tuple(x.shape[1:]) == tuple(shape[:-1]):
        x = x[..., None]
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise InputError(f"{name} must have shape (N, {', '.join(map(str, shape))}) "
                         f"(N inputs, the box, channels last), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError(f"{name} holds no inputs")
    return x


def kernel(propagate, input_shape, output_mirror, defaults, x1, x2=None,
           get=("nngp", "ntk"), params=None, fast_maps=None):
    """The NNGP/NTK Gram matrices K[i, j] = k(x1[i], x2[j]) as a traceable JAX function.

    ``propagate``: a generated module's ``_propagate(xa, xb, stats_a, stats_b, want_ntk,
    params)``; ``defaults``: its DEFAULT_PARAMS; ``x2=None``: the Gram matrix of x1 with itself
    (the diagonal from the self pass; under identity (S), ``output_mirror`` not None, only
    i < j is computed and K[j, i] follows from K[i, j] by
    :func:`~kernelc.runtime.layouts.mirror_pairs`). ``get``: "nngp" or "ntk" (an array), or a tuple of both (a dict).
    ``params``: hyperparameters replacing the defaults (see :func:`resolve_params`).
    ``fast_maps``: as kernel_fn's (None: the polynomial arc-cosine in float32 only)."""
    single, get = check_get(get)
    if fast_maps not in (None, True, False):
        raise InputError(f"fast_maps must be None, True or False, got {fast_maps!r}")
    xa = as_inputs(x1, "x1", input_shape)
    xb = xa if x2 is None else as_inputs(x2, "x2", input_shape)
    dtype = jnp.result_type(xa, xb)
    xa, xb = xa.astype(dtype), xb.astype(dtype)
    values = resolve_params(defaults, params, dtype)
    want_ntk = "ntk" in get
    n1, n2 = xa.shape[0], xb.shape[0]
    # precision tracking off: its host callbacks carry no derivative (module docstring)
    with precision_tracking(False), fast_maps_context(fast_maps):
        k1, t1, s1 = propagate(xa, xa, None, None, want_ntk, values)
        s2 = s1 if x2 is None else propagate(xb, xb, None, None, False, values)[2]
        # the pairs of the second pass, as static indices (the shapes are known when tracing)
        if x2 is None:
            mirror = output_mirror is not None
            I, J = np.triu_indices(n1, 1) if mirror else np.nonzero(~np.eye(n1, dtype=bool))
        else:
            mirror = False
            I, J = (a.ravel() for a in np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij"))
        grams = {}
        if len(I):
            k, t, _ = propagate(xa[I], xb[J], [s[I] for s in s1], [s[J] for s in s2],
                                want_ntk, values)
        else:  # a Gram matrix of one input: only its self pair
            k = t = None
        for name, vals, diag in (("nngp", k, k1), ("ntk", t, t1)):
            if name not in get:
                continue
            shape = (n1, n2) + tuple(diag.shape[1:])
            gram = jnp.zeros(shape, diag.dtype)
            if vals is not None:
                gram = gram.at[I, J].set(vals)
                if mirror:
                    gram = gram.at[J, I].set(mirror_pairs(vals, output_mirror))
            if x2 is None:
                d = np.arange(n1)
                gram = gram.at[d, d].set(diag)
            grams[name] = gram
    return grams[get[0]] if single else grams
