"""The SO(3) family's declaration: signals on the sphere S² lifted to SO(3) (docs/math/so3.md)."""
from __future__ import annotations

from ..protocol import Domain, Family, register_family
from .group import HarmonicGroup

#: How a spec declares the family's input (grammars/kernelc.lark, ``input_sphere``).
INPUT_DECLARATION = "input sphere bandlimit L channels C"


def _input_mismatch(group, owner):
    return (f"group {group.name} acts on signals on the sphere: declare "
            f"'{INPUT_DECLARATION}'", None)


def _listing(group):
    return "∞", str(group.dim), "sphere", "continuous: " + group.description


SO3_FAMILY = register_family(Family(
    name="so3",
    group_type=HarmonicGroup,
    input_domain="sphere",
    input_text="S² band {band} (grid {box})×{width}",
    domains=(Domain("sphere", "the sphere S²", "S² band {band} (grid {box}) ×{width}",
                    "sphere_coeffs"),
             Domain("so3", "the group SO(3)", "SO(3) band {band} (grid {box}) ×{width}",
                    "so3_general")),
    continuous=True,
    input_mismatch=_input_mismatch,
    listing=_listing,
    details=lambda group: group.describe(),
    acts_on="the sphere",
    example_group="SO3",
    doc="SO(3) on S²: band-limited signals on the sphere lifted to SO(3), full-support filters",
    # CPU: the Gram-tile pass runs most pairs per second up to ~25 MiB of XLA working set per
    # tile and 1.3-1.7x fewer from ~37 MiB on (2-core EPYC, 32 MiB L3; benchmarks/so3_tiles.py,
    # docs/performance.md); other platforms: the memory budget alone
    tile_working_set={"cpu": 24 << 20}))
