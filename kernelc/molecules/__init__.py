"""Molecules as sets of atoms carrying spherical signals (QM9 experiments of the SO(3) family).

:mod:`.featurize` turns a molecule into per-atom signals on S² (exact band-limited harmonic
projections, channels last, the input layout of compiled SO(3) kernels); :mod:`.kernels` sums an
atom kernel over atom pairs into a molecule kernel, for energies that are sums of per-atom terms.
"""
from .featurize import (BETA, DEFAULT_POWERS, ELEMENTS, AtomData, atom_coefficients,
                        atom_signals, conj_harmonics, featurize_dataset, n_channels,
                        zonal_coefficients)
from .kernels import molecule_gram, molecule_kernel_fn

__all__ = ["BETA", "DEFAULT_POWERS", "ELEMENTS", "AtomData", "atom_coefficients", "atom_signals",
           "conj_harmonics", "featurize_dataset", "n_channels", "zonal_coefficients",
           "molecule_gram", "molecule_kernel_fn"]
