"""The steerable family's declaration: C_n and D_n for any n on the pixel grid, through filters
in a steerable basis (docs/math/steerable.md). Its signals are those of the lattice family (the
input box, then one value per site and orientation), so it shares the lattice's domains and
storage layouts; what differs is how a filter is rotated (a map of basis coefficients, not a
permutation of offsets), hence its own layers, rules and identities.
"""
from __future__ import annotations

from ..lattice.family import LATTICE, input_mismatch
from ..protocol import Family, register_family
from .group import SteerableGroup


def _listing(group):
    return str(group.order), "2", "square (steerable)", \
        f"rotation {360 / group.n:g}°" + ("; reflection" if group.reflections else "")


def _details(group) -> str:
    """The description, then every element with its matrix, inverse and whether it maps the
    grid onto itself."""
    lines = [group.describe(), "", "elements (index: label, matrix, inverse, grid symmetry):"]
    grid = set(group.grid_elements)
    for i, label in enumerate(group.element_labels):
        m = group.elements[i].round(4).tolist()
        lines.append(f"  {i:>3}: {label:<10} {str(m):<40} inverse {int(group.inverse[i]):>3}"
                     f"   {'grid' if i in grid else 'sampled'}")
    lines.append(f"abelian: {group.is_abelian}; conjugacy classes: "
                 f"{[len(c) for c in group.conjugacy_classes]}")
    return "\n".join(lines)


STEERABLE = register_family(Family(
    name="steerable",
    group_type=SteerableGroup,
    input_domain="box",
    input_text="{box}×{width}",
    domains=LATTICE.domains,
    continuous=False,
    input_mismatch=input_mismatch,
    listing=_listing,
    details=_details,
    acts_on="the pixel grid Z² (steerable filters)",
    example_group="C8",
    doc="C_n ⋉ Z² and D_n ⋉ Z² for any n: filters in a steerable basis, rotated exactly on "
        "their coefficients and sampled on the pixel grid"))
