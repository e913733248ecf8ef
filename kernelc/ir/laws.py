"""Laws of signals: whether a signal is a centred Gaussian process (what every nonlinearity map
assumes), an activation of one, a concatenation, the input data, or none of these.

The value objects only; the typing pass that assigns them to the edges of the layer graph is
:mod:`kernelc.frontend.gaussianity` (see its docstring and docs/gaussianity.md), and the layer
rules read them (:mod:`kernelc.rules.layers`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Tuple

__all__ = ["Law", "Gaussian", "InputData", "Activation", "Concatenation", "NonGaussian",
           "concat_weights"]


class Law:
    """What kind of random field a signal is (see the module docstring)."""

    def describe(self) -> str:  # pragma: no cover - every law overrides it
        raise NotImplementedError

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Gaussian(Law):
    """A centred Gaussian process; its kernel is the value computed at node ``node``."""

    node: str

    def describe(self) -> str:
        return "Gaussian"


@dataclass(frozen=True)
class InputData(Law):
    """The input signal: fixed data, described by its Gram matrix K0 only."""

    def describe(self) -> str:
        return "input data"


@dataclass(frozen=True)
class Activation(Law):
    """φ_k∘…∘φ_1(u) elementwise, u the Gaussian signal of node ``source``; ``chain`` lists the
    nonlinearity nodes φ_1, ..., φ_k in the order they are applied, ``map`` is the kernel map
    (:class:`~kernelc.rules.nonlinearities.KernelMap`) of their composition."""

    source: str
    chain: Tuple[str, ...]
    map: Any = field(compare=False, repr=False)

    def describe(self) -> str:
        return "post-activation"


@dataclass(frozen=True)
class Concatenation(Law):
    """Channel blocks: a fraction ``weights[b]`` of the channels follows ``parts[b]``."""

    weights: Tuple[float, ...]
    parts: Tuple[Law, ...]

    def describe(self) -> str:
        return "concatenation of " + ", ".join(p.describe() for p in self.parts)


@dataclass(frozen=True)
class NonGaussian(Law):
    """Not Gaussian, and not a form the rules compute exactly; ``reason`` says why and
    ``suggestion`` how to write the network so that it is."""

    reason: str
    suggestion: Optional[str] = None

    def describe(self) -> str:
        return "not Gaussian"


def concat_weights(widths: Sequence[Optional[int]]) -> Tuple[float, ...]:
    """Channel fractions n_b/n of a concatenation (equal when widths are not all given)."""
    if all(w is not None for w in widths):
        return tuple(w / sum(widths) for w in widths)
    return (1.0 / len(widths),) * len(widths)
