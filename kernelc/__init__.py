"""kernelc: a compiler for the infinite-width NNGP and NTK kernels of group-equivariant CNNs.

>>> import kernelc
>>> net = kernelc.compile("specs/p4_histology.kc")
>>> grams = net.kernel_fn(x1, x2)            # {"nngp": ..., "ntk": ...}
>>> print(net.explain(n=100))                # formulas, identities, memory and FLOPs
"""
__version__ = "0.1.0"

from .errors import KernelcError  # noqa: E402
from .frontend import check, load_spec, parse_spec  # noqa: E402
from .api import CompiledKernel, compile  # noqa: E402,A004

__all__ = ["KernelcError", "CompiledKernel", "check", "compile", "load_spec", "parse_spec",
           "__version__"]
