"""The SO(3) family: signals on S² lifted to SO(3), analysed by harmonics (docs/math/so3.md).

``group`` (the group object, exact rotations, Wigner D), ``family`` (the declaration); the stage
modules ``kinds`` (typing), ``rules`` (kernel rules), ``identities`` and ``network`` (finite
layers) are imported by the stage that reads them (:mod:`kernelc.families`). Its runtime
helpers stay in :mod:`kernelc.runtime.so3` and :mod:`kernelc.runtime.harmonic`: generated
modules import them.
"""
from .family import SO3_FAMILY
from .group import SO3, HarmonicGroup

__all__ = ["SO3_FAMILY", "SO3", "HarmonicGroup"]
