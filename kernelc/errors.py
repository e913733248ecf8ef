"""Every error kernelc raises on purpose is a :class:`KernelcError`.

Errors that come from a spec carry a :class:`SourceSpan`; ``str(error)`` then reads like a
compiler diagnostic::

    specs/bad.kc:4:3: error: unknown layer 'gcnov'
        gcnov(size=3)
        ^^^^^
    expected one of: conv, dense, gconv, lift, ...
    did you mean 'gconv'?
"""
from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass
from typing import Iterable, Optional


@dataclass(frozen=True)
class SourceSpan:
    """A position in a spec text: 1-based line and column, and the length of the offending text."""

    line: int
    column: int
    length: int = 1
    filename: str = "<spec>"
    source_line: str = ""

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}"


class KernelcError(Exception):
    """Base class of all errors kernelc reports to users."""

    kind = "error"

    def __init__(self, message: str, span: Optional[SourceSpan] = None, *,
                 expected: Optional[Iterable[str]] = None, suggestion: Optional[str] = None):
        self.message = message
        self.span = span
        self.expected = sorted(set(expected)) if expected else []
        self.suggestion = suggestion
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.span}: {self.kind}: {self.message}" if self.span else f"{self.kind}: {self.message}"
        lines = [head]
        if self.span and self.span.source_line:
            text = self.span.source_line.rstrip("\n")
            lines.append("    " + text)
            lines.append("    " + " " * (self.span.column - 1) + "^" * max(1, self.span.length))
        if self.expected:  # all of them, wrapped: a list cut off hides the one wanted
            lines.append(textwrap.fill("expected one of: " + ", ".join(self.expected),
                                       width=100, subsequent_indent="    ",
                                       break_long_words=False, break_on_hyphens=False))
        if self.suggestion:
            lines.append(self.suggestion)
        return "\n".join(lines)


class SpecSyntaxError(KernelcError):
    """The spec text does not follow the grammar."""

    kind = "syntax error"


class SpecError(KernelcError):
    """The spec parses but says something kernelc cannot accept (unknown name, bad value...)."""


class ShapeError(SpecError):
    """Type/shape inference failed: a layer gets a signal it cannot take."""

    kind = "type error"


class GroupError(KernelcError):
    """A group declaration is invalid (non-integer, not invertible, too large...)."""

    kind = "group error"


class InputError(KernelcError):
    """Arrays handed to a kernel function or a CLI command are unusable."""

    kind = "input error"


class MemoryBudgetError(KernelcError):
    """A request would need more memory than the budget allows; raised before allocating."""

    kind = "memory error"


class OutputError(KernelcError):
    """An output file cannot be written where the user asked (missing folder, a directory, the
    same file as an input, no permission...); raised before any work where possible."""

    kind = "output error"


class GeneratedCodeError(KernelcError):
    """A generated module failed the safety check that runs before it is executed (see
    :func:`kernelc.api.check_generated_source`); a bug in kernelc, never the user's fault."""

    kind = "internal error"


class ExplainError(KernelcError):
    """An ``explain`` request that cannot be served: an unknown output style, or a calibration
    run (``calibrate=True``) that cannot time the network on the requested inputs."""

    kind = "explain error"


class MissingDependencyError(KernelcError, ImportError):
    """An optional dependency that a part of kernelc needs is not installed; the message names
    the package and the pip extra that brings it. Also an :class:`ImportError`, so that
    ``pytest.importorskip`` and ``except ImportError`` treat it as one."""

    kind = "missing dependency"


class KernelcWarning(UserWarning):
    """A result kernelc computed but cannot vouch for to the working precision (the CLI prints
    these as one line, ``kernelc: warning: ...``)."""


class QuadratureWarning(KernelcWarning):
    """A kernel map computed by Gauss–Hermite quadrature (a φ without closed form) is less
    accurate than the working precision at the variances of this computation; the message gives
    the estimate and how to raise the rule's degree."""


class PrecisionWarning(KernelcWarning):
    """A float32 kernel is estimated to be off by more than the tolerance (1e-3): near
    correlation 1, rounding errors grow from layer to layer in a chaotic network (deep erf with a
    large W_std), or move relu's NTK factor, which has a square-root edge there. The message
    names the layer where the estimate first passes the tolerance and suggests dtype='float64'
    (docs/precision.md)."""


class IndefiniteKernelWarning(KernelcWarning):
    """A Gram matrix of one input set with itself has eigenvalues below −tol·λ_max, i.e. it is
    not positive semi-definite beyond its stated accuracy (discretisation, e.g. an SO(3) grid
    that aliases, or round-off); the message gives λ_min, λ_max, their count and the ridge a
    solver would need (:mod:`kernelc.runtime.psd`)."""


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> Optional[str]:
    """``"did you mean 'gconv'?"`` for the nearest valid names, or ``None`` when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
