"""The messages of the orbit-average helpers' error paths (kernelc.families.lattice.orbit)."""
from __future__ import annotations

import numpy as np
import pytest

from kernelc.errors import InputError, SpecError
from kernelc.families.lattice.orbit import matching_cnn_spec, orbit_average, trivial_group_decl
from kernelc.frontend import parse_spec
from kernelc.groups import get_group


def test_no_plain_network_on_an_unknown_lattice():
    with pytest.raises(SpecError, match="^error: no matching plain network on a triangular "
                                        "lattice$"):
        trivial_group_decl(2, "triangular")


def test_no_plain_cnn_matches_an_so3_network():
    spec = parse_spec("group SO3\ninput sphere bandlimit 2 channels 1\nlift\ngroup_pool\n")
    with pytest.raises(SpecError, match="a plain CNN matches the networks of lattice groups only, "
                                        "not SO3") as info:
        matching_cnn_spec(spec)
    assert info.value.span.line == 1


def test_orbit_average_of_inputs_without_spatial_axes():
    """Checked before the kernel is called (none is needed to reach the error)."""
    with pytest.raises(InputError, match="^input error: inputs need 2 spatial axes and a channel "
                                         "axis$"):
        orbit_average(None, get_group("p4"), np.zeros((3, 8)))
