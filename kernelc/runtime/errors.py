"""The runtime's error types: kernelc's own when it is installed (so that a user catches
``kernelc.errors.KernelcError``), plain subclasses of the built-in ones in a standalone module."""
try:
    from kernelc.errors import (IndefiniteKernelWarning, InputError, MemoryBudgetError,
                                OutputError, PrecisionWarning, QuadratureWarning)
except ImportError:  # pragma: no cover - a standalone module without kernelc
    class InputError(ValueError):
        pass

    class OutputError(OSError):
        pass

    class MemoryBudgetError(MemoryError):
        pass

    class QuadratureWarning(UserWarning):
        pass

    class PrecisionWarning(UserWarning):
        pass

    class IndefiniteKernelWarning(UserWarning):
        pass

__all__ = ["InputError", "MemoryBudgetError", "OutputError", "QuadratureWarning",
           "PrecisionWarning", "IndefiniteKernelWarning"]
