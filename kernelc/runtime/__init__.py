"""The runtime package: what generated modules run on (jax and numpy only, no sympy or kernelc
compiler code), so that ``generated/`` holds each network's own code and nothing else.

* :mod:`~kernelc.runtime.driver`: input checks, memory plan, tiles, progress, ``kernel_fn``;
* :mod:`~kernelc.runtime.layouts`: the input kernel, diagonals and variances of each layout;
* :mod:`~kernelc.runtime.stencils`: the lattice filter sums (lift, gconv, conv);
* :mod:`~kernelc.runtime.steerable`: steerable bases, coupling matrices, mixed stencils;
* :mod:`~kernelc.runtime.maps`: the guarded helpers of the nonlinearity maps;
* :mod:`~kernelc.runtime.harmonic`, :mod:`~kernelc.runtime.so3`: harmonic analysis on S² and
  SO(3) and the SO(3) family's kernel helpers;
* :mod:`~kernelc.runtime.errors`: the error types (kernelc's own when installed).

``RUNTIME_VERSION`` changes whenever a helper's signature or meaning changes; a generated
module states the version it was generated for and refuses to run on another one.
``kernelc compile --standalone`` inlines the helpers a module uses instead of importing them.
"""

RUNTIME_VERSION = 4  # 4: one pass for self pairs and Gram tiles (self_pairs, STATS_SHAPES)

#: The modules whose public helpers (``__all__``) generated code may import, in import order.
HELPER_MODULES = ("kernelc.runtime.layouts", "kernelc.runtime.stencils", "kernelc.runtime.maps",
                  "kernelc.runtime.so3", "kernelc.runtime.steerable", "kernelc.runtime.psd",
                  "kernelc.runtime.driver")
