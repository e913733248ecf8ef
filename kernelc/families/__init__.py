"""Group families as packages: one package per family, split by pipeline stage.

A family (the lattice groups H ⋉ Z^d, SO(3) on S², C_n/D_n with steerable filters on Z²) is a
vertical slice of the pipeline. Its package holds

    family.py       the :class:`~kernelc.families.protocol.Family` declaration (groups layer)
    group.py        the group objects                                       (groups layer)
    kinds.py        its layer kinds and their typing rules                  (frontend layer)
    rules.py        its kernel rules: formulas and lowering to plan ops     (rules layer)
    identities.py   its symmetry identities R, D, O                         (compiler layer)
    network.py      its finite-width layers and network class               (the rest)

and each module belongs to the layer of its stage (tests/test_architecture.py). The stages keep
one table per family, keyed by the :class:`Family` object; a family's stage module fills it
with the stage's own decorator (``@layer_kind(..., family=LATTICE)``, ``@rule(...)``,
``@identity(...)``, ``@finite_layer(...)``), and one module per stage imports every family's
module of that stage and answers look-ups: :mod:`kernelc.frontend.family_kinds`,
:mod:`kernelc.rules.family_rules`, :mod:`kernelc.compiler.family_identities`,
:mod:`kernelc.network.family_networks`.

What stays in the stage packages — the machinery and the *common table* that every family
shares: the ``LayerKind``/``Param`` classes and the ``layer_kind``, ``rule``, ``identity`` and
``finite_layer`` decorators; the kinds registered with ``family=None``, which every family's
table includes: the ``dense`` readout, the nonlinearities, and the branch structure (``fanout``,
the empty branch ``identity``, ``sum``, ``concat``), whose rules are entrywise on kernels of one
layout whatever the family; and the identity (S) (Gram symmetry), which depends on nothing but
the output domain. Everything about the lattice (filter supports and stencils, boxes, hexagonal
domains, ``lift``/``gconv``/``conv``, ``group_pool``, ``avg_pool``, ``flatten``, the input rule)
is in :mod:`kernelc.families.lattice`, everything about SO(3) in :mod:`kernelc.families.so3`,
and the steerable family (:mod:`kernelc.families.steerable`) reuses the lattice's signals, input
rule, poolings and their finite layers as entries of its own tables.

The runtime helpers a family's generated code calls stay in :mod:`kernelc.runtime` (generated
modules import them), and the lattice's :class:`~kernelc.network.build.FiniteNetwork` stays the
base class of every family's network (the walk over the typed graph is shared).

>>> from kernelc.families import FAMILIES, family_of
>>> from kernelc.groups import get_group
>>> family_of(get_group("SO3")).input_domain
'sphere'
"""
from .protocol import (FAMILIES, VECTOR, Domain, Family, domain, family_of, family_of_input,
                       register_family)
from .lattice import LATTICE
from .so3 import SO3_FAMILY
from .steerable import STEERABLE

__all__ = ["FAMILIES", "VECTOR", "Domain", "Family", "LATTICE", "SO3_FAMILY", "STEERABLE", "domain",
           "family_of", "family_of_input", "register_family"]
