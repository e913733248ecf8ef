"""The messages of the compiler's registration error paths (for authors of identities)."""
from __future__ import annotations

import pytest

from kernelc.compiler.identities import KEYS, identity
from kernelc.errors import KernelcError


def test_an_unknown_identity_key_is_refused_before_registering():
    with pytest.raises(KernelcError, match=r"^error: unknown identity \(Q\)") as info:
        identity("Q")
    assert info.value.expected == sorted(KEYS)
