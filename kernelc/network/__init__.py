"""The finite-width networks the kernels describe, and their empirical kernels.

>>> import kernelc
>>> net = kernelc.compile("specs/p4_histology.kc")
>>> init_fn, apply_fn = kernelc.network.build(net.typed)
>>> params = init_fn(jax.random.PRNGKey(0), (32, 32, 3), width=64)
>>> out = apply_fn(params, x)                                     # (N, 9)
>>> ntk = kernelc.network.empirical_ntk(apply_fn, params, x)      # (N, N)

Layouts (channels last): box signals (N, *box, C), group signals (N, *box, |H|, C) with the
group axis indexing ``group.elements``, vectors (N, C). See :mod:`kernelc.families.lattice.network` for
the layer conventions (docs/math/conventions.md, NTK parameterisation).
"""
from .build import FiniteNetwork
from .empirical import (empirical_nngp, empirical_ntk, monte_carlo, output_product,
                        stderr_progress)
from .family_networks import build, network
from .layers import finite_layer, finite_layers

__all__ = ["FiniteNetwork", "build", "network", "empirical_ntk", "empirical_nngp",
           "monte_carlo", "output_product", "stderr_progress", "finite_layer", "finite_layers"]
