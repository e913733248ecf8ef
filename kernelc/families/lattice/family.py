"""The lattice family's declaration: groups H ⋉ Z^d acting on boxes of Z^d
(docs/math/conventions.md)."""
from __future__ import annotations

from ..protocol import Domain, Family, register_family
from .group import LatticeGroup


def input_mismatch(group, owner):
    """A lattice group with another family's input: name a group that takes that input."""
    return (f"{owner.input_domain} inputs need a group that acts on {owner.acts_on} "
            f"({owner.example_group}), not {group.name}", f"group {owner.example_group}")


def _listing(group):
    gens = "; ".join(str([list(r) for r in m]).replace(" ", "") for m in group.generators) \
        or "none"
    return str(group.order), str(group.dim), group.lattice, gens


def _details(group) -> str:
    """The group's description, then every element with its inverse and conjugacy class."""
    lines = [group.describe(), "", "elements (index: matrix, inverse, order-class):"]
    cls = {e: i for i, c in enumerate(group.conjugacy_classes) for e in c}
    for i, label in enumerate(group.element_labels):
        lines.append(f"  {i:>3}: {label:<28} inverse {int(group.inverse[i]):>3}   class {cls[i]}")
    lines.append(f"abelian: {group.is_abelian}; conjugacy classes: "
                 f"{[len(c) for c in group.conjugacy_classes]}")
    return "\n".join(lines)


LATTICE = register_family(Family(
    name="lattice",
    group_type=LatticeGroup,
    input_domain="box",
    input_text="{box}×{width}",
    domains=(Domain("box", "the input box (Z^d)", "Z^{d} box {box} ×{width}", "box_full"),
             Domain("group", "the group G", "G (|H|={order}) on box {box} ×{width}",
                    "group_general")),
    continuous=False,
    input_mismatch=input_mismatch,
    listing=_listing,
    details=_details,
    acts_on="the lattice Z^d",
    example_group="p4",
    doc="lattice groups G = H ⋉ Z^d: signals on a finite box of Z^d, lifted to G"))
