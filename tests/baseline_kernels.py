"""Stored kernels of every bundled spec (float64, two deterministic inputs each), written before
the runtime redesign; ``tests/test_baseline_kernels.py`` holds today's kernels to them (≤ 1e-12).

Regenerate only for a deliberate change of the numbers: ``python -m tests.baseline_kernels``.
"""
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "tests" / "data" / "baseline_kernels.npz"


def inputs(shape, seed=0):
    """Two inputs of ``shape`` (box and channels) and a third that repeats the first: the Gram
    matrix then has a self pair off the diagonal too."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2,) + tuple(shape))
    return np.concatenate([x, x[:1]])


def kernels(compiled):
    """{'nngp', 'ntk'} Gram matrices of ``inputs(...)`` in float64."""
    x = inputs(compiled.module.INPUT_SHAPE)
    return compiled.kernel_fn(x, dtype="float64", progress=False)


def main():
    import kernelc
    out = {}
    for spec in sorted((ROOT / "specs").glob("*.kc")):
        result = kernels(kernelc.compile(spec))
        for name, gram in result.items():
            out[f"{spec.stem}/{name}"] = gram
        print(spec.stem, {k: v.shape for k, v in result.items()}, flush=True)
    STORE.parent.mkdir(exist_ok=True)
    np.savez(STORE, **out)
    print("wrote", STORE)


if __name__ == "__main__":
    main()
