"""The messages of the SO(3) grid planner's error paths reached through its public functions."""
from __future__ import annotations

import pytest

from kernelc.families.so3.grid import aliasing_error
from kernelc.rules.nonlinearities import kernel_map
from kernelc.runtime.harmonic import MAX_BANDWIDTH


@pytest.mark.parametrize("bandwidth", [0, MAX_BANDWIDTH + 1])
def test_aliasing_error_of_a_bandwidth_out_of_range(bandwidth):
    with pytest.raises(ValueError, match=f"^bandwidth {bandwidth} outside 1..{MAX_BANDWIDTH}$"):
        aliasing_error((kernel_map("relu"),), 2, 2, bandwidth)
