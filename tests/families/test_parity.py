"""Every registered group family is complete across the stage tables, and its tables agree.

For each family and each node kind its graphs can hold (its layer kinds, common and own, plus the
structural nodes of the front end): a typing declaration, a kernel rule and a finite layer exist;
no table has an entry for a kind the family cannot type; a kind is a weight layer (category
"weight", parametric) exactly when its finite layer draws weights (has ``init``). The family
also types its input, builds its network, decides every identity, and names a group that is
registered and belongs to it.
"""
from dataclasses import dataclass
from typing import Dict, List

import pytest

from kernelc.compiler.family_identities import identities_for
from kernelc.compiler.identities import KEYS
from kernelc.families import FAMILIES, LATTICE, SO3_FAMILY, family_of
from kernelc.frontend.family_kinds import input_types, layer_kinds
from kernelc.frontend.infer import STRUCTURAL
from kernelc.frontend.layers import FAMILY_INPUT_TYPES
from kernelc.groups import get_group
from kernelc.network.build import FAMILY_NETWORKS
from kernelc.network.layers import finite_layers
from kernelc.rules.family_rules import rules_for

#: Nodes of the graph that need no finite layer: the network feeds its input in itself.
NO_FINITE_LAYER = {"input"}


@dataclass
class FamilyTables:
    """What the stages hold for one family (a fake family builds these by hand)."""

    kinds: Dict[str, object]  # kind -> LayerKind
    rules: Dict[str, object]  # node kind -> LayerRule
    finite: Dict[str, object]  # node kind -> FiniteLayer
    identities: Dict[str, object]  # key -> decision function
    input_typed: bool
    network: object


def tables(family) -> FamilyTables:
    return FamilyTables(layer_kinds(family), rules_for(family), finite_layers(family),
                        identities_for(family), family in FAMILY_INPUT_TYPES,
                        FAMILY_NETWORKS.get(family))


def parity_problems(name: str, t: FamilyTables) -> List[str]:
    """Every way the tables of family ``name`` disagree, one sentence each (empty: parity)."""
    problems = []
    nodes = set(t.kinds) | set(STRUCTURAL)
    for kind in sorted(nodes - set(t.rules)):
        problems.append(f"{name}: node kind '{kind}' has no kernel rule")
    for kind in sorted(nodes - set(t.finite) - NO_FINITE_LAYER):
        problems.append(f"{name}: node kind '{kind}' has no finite layer")
    for kind in sorted(set(t.rules) - nodes):
        problems.append(f"{name}: kernel rule '{kind}' has no layer kind to type it")
    for kind in sorted(set(t.finite) - nodes):
        problems.append(f"{name}: finite layer '{kind}' has no layer kind to type it")
    for kind in sorted(set(t.kinds) & set(t.finite)):
        weights = t.finite[kind].init is not None
        if t.kinds[kind].parametric != weights:
            problems.append(f"{name}: '{kind}' is {'' if t.kinds[kind].parametric else 'not '}a "
                            f"weight layer (category '{t.kinds[kind].category}'), but its finite "
                            f"layer {'draws' if weights else 'draws no'} weights")
    for key in KEYS:
        if key not in t.identities:
            problems.append(f"{name}: identity ({key}) is not decided")
    if not t.input_typed:
        problems.append(f"{name}: no typing rule for the spec's input")
    if t.network is None:
        problems.append(f"{name}: no finite network class")
    return problems


@pytest.mark.parametrize("family", list(FAMILIES.values()), ids=list(FAMILIES))
def test_every_family_is_complete_and_consistent_across_the_tables(family):
    assert parity_problems(family.name, tables(family)) == []


@pytest.mark.parametrize("family", list(FAMILIES.values()), ids=list(FAMILIES))
def test_the_family_declaration_is_consistent(family):
    assert family.input_domain in {d.name for d in family.domains}
    assert family_of(get_group(family.example_group)) is family
    assert input_types(family) is FAMILY_INPUT_TYPES[family]


def test_the_families_share_the_common_kinds_and_keep_their_own():
    lattice, so3 = layer_kinds(LATTICE), layer_kinds(SO3_FAMILY)
    assert {"dense"} <= set(lattice) & set(so3)
    assert {"conv", "avg_pool", "flatten"} <= set(lattice) - set(so3)
    assert lattice["lift"] is not so3["lift"]  # same name, the family's own typing rule


@pytest.mark.parametrize("table, kind, expected", [
    ("rules", "group_pool", "lattice-fake: node kind 'group_pool' has no kernel rule"),
    ("finite", "gconv", "lattice-fake: node kind 'gconv' has no finite layer"),
    ("kinds", "avg_pool", "lattice-fake: kernel rule 'avg_pool' has no layer kind to type it"),
    ("identities", "O", "lattice-fake: identity (O) is not decided"),
])
def test_a_family_missing_one_entry_is_named(table, kind, expected):
    """A fake family: the lattice tables with one entry left out of one table."""
    fake = tables(LATTICE)
    setattr(fake, table, {k: v for k, v in getattr(fake, table).items() if k != kind})
    assert expected in parity_problems("lattice-fake", fake)


def test_a_kind_whose_tables_disagree_on_weights_is_named():
    fake = tables(LATTICE)
    fake.finite = dict(fake.finite, dense=fake.finite["group_pool"])  # no init: no weights
    assert parity_problems("lattice-fake", fake) == [
        "lattice-fake: 'dense' is a weight layer (category 'weight'), but its finite layer "
        "draws no weights"]


def test_a_family_without_input_typing_or_network_is_named():
    fake = tables(LATTICE)
    fake.input_typed, fake.network = False, None
    assert parity_problems("lattice-fake", fake) == [
        "lattice-fake: no typing rule for the spec's input",
        "lattice-fake: no finite network class"]
