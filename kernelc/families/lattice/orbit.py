"""The orbit-average identity (O) and the matching plain CNN of a GCNN spec.

For a GCNN that starts with a lifting layer and has ρ(H)-invariant spatial supports, every
layer's kernel is the matching plain-CNN kernel k (same filters, no group axis) on transformed
inputs; after group pooling

    K(f, f') = (1/|H|) Σ_{h∈H} k(f, ρ(h) f'),

where k uses a global average over translations in place of the group pool. Affine (dense)
layers after the pool commute with the average, nonlinearities do not: the precondition admits
only dense layers after ``group_pool``. The same average of a CNN spec's output kernel is the
kernel of an ensemble trained with full data augmentation over H (the paper's theorem).
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import networkx as nx
import numpy as np

from ...errors import InputError, SpecError
from .group import LatticeGroup
from ...frontend.ast import Branches, GroupDecl, Layer, Repeat, Spec
from ...frontend.infer import TypedGraph, resolve_group


def orbit_precondition(tg: TypedGraph) -> Tuple[bool, str]:
    g = tg
    group = tg.group
    if group.order == 1:
        return False, "the point group is trivial"
    kinds = {n: g.node(n).kind for n in g.order()}
    first = g.successors(g.input_node)
    if len(first) != 1 or kinds[first[0]] != "lift":
        return False, "the network does not start with a lifting layer"
    pools = [n for n, k in kinds.items() if k == "group_pool"]
    if len(pools) != 1:
        return False, "the network needs exactly one group_pool"
    after = nx.descendants(g.graph, pools[0])
    if any(kinds[n] != "dense" for n in after):
        return False, "only dense layers may follow group_pool (a nonlinearity does not " \
                      "commute with the orbit average)"
    if any(kinds[n] in ("avg_pool", "flatten") for n in kinds):
        return False, "avg_pool/flatten on group features have no plain-CNN counterpart here"
    for n, k in kinds.items():
        if k in ("lift", "gconv", "conv") and not group.is_invariant(g.node(n).hp["support"]):
            return False, f"the support of {g.node(n).name} is not ρ(H)-invariant"
    return True, (f"K(f,f') = mean_h k(f, ρ(h)f') over the {group.order} elements, with k the "
                  "matching plain-CNN kernel; the rotational supports of gconv layers do not "
                  "change the kernel at infinite width")


def _cnn_statements(body):
    out = []
    for st in body:
        if isinstance(st, Layer):
            if st.kind in ("lift", "gconv"):
                args = tuple(a for a in st.args if a.name != "rotations")
                out.append(Layer("conv", args, st.span))
            elif st.kind == "group_pool":
                out.append(Layer("avg_pool", (), st.span))
                out.append(Layer("flatten", (), st.span))
            else:
                out.append(st)
        elif isinstance(st, Repeat):
            out.append(Repeat(st.count, tuple(_cnn_statements(st.body)), st.span))
        else:
            out.append(Branches(st.combine, tuple(tuple(_cnn_statements(b))
                                                  for b in st.branches), st.span))
    return out


def trivial_group_decl(dim: int, lattice: str = "square", span=None) -> GroupDecl:
    """The trivial point group on the same lattice: its default filter supports and its domain
    mask are those of the lattice (hexagonal balls and the inscribed hexagon on a hexagonal one).

    Square: ``group Z{d} = trivial d``. Hexagonal: ``group hex_trivial = hexagonal generators
    [[1, 0], [0, 1]]`` (the DSL's ``trivial d`` is a square lattice; the identity as the only
    generator keeps the hexagonal lattice and round-trips through the unparser).
    """
    if lattice == "hexagonal":
        return GroupDecl("hex_trivial", (((1, 0), (0, 1)),), "hexagonal", span, 2)
    if lattice != "square":
        raise SpecError(f"no matching plain network on a {lattice} lattice", span)
    return GroupDecl(f"Z{dim}", (), "square", span, dim)


def matching_cnn_spec(spec: Spec, dim: Optional[int] = None, lattice: Optional[str] = None) -> Spec:
    """The plain CNN with the same filters: lift/gconv -> conv, group_pool -> avg_pool+flatten.

    The plain network lives on the lattice of the spec's group (read from the group unless
    ``lattice`` is given), so that its filter supports and input domain match the GCNN's: on
    p6 it is a hexagonal plain network, not a square one.
    """
    if dim is None or lattice is None:
        group = resolve_group(spec.group)
        if not isinstance(group, LatticeGroup):
            raise SpecError(f"a plain CNN matches the networks of lattice groups only, not "
                            f"{group.name}", spec.group.span)
        dim = group.dim if dim is None else dim
        lattice = group.lattice if lattice is None else lattice
    trivial = trivial_group_decl(dim, lattice, spec.group.span)
    return dataclasses.replace(spec, name=spec.name + "_cnn", group=trivial,
                               body=tuple(_cnn_statements(spec.body)))


def orbit_average(kernel_fn, group, x1, x2=None, get=("nngp", "ntk"), **kwargs):
    """(1/|H|) Σ_h k(x1, ρ(h) x2): the orbit-averaged (data-augmentation) kernel.

    ``kernel_fn`` is a compiled kernel with an invariant (vector) output; ``group`` the
    LatticeGroup whose point group H acts on the inputs' box about its centre. The identity
    block of the orbit holds x2 itself: where x1[i] and x2[j] are the same input, ``kernel_fn``
    takes the pair from its exact self pass.
    """
    x1 = np.asarray(x1)
    x2 = x1 if x2 is None else np.asarray(x2)
    if x2.ndim < group.dim + 1:
        raise InputError(f"inputs need {group.dim} spatial axes and a channel axis")
    axes = tuple(range(1, 1 + group.dim))
    orbit = np.concatenate([np.asarray(group.transform_signal(x2, h, spatial_axes=axes))
                            for h in range(group.order)])
    single = isinstance(get, str)
    grams = kernel_fn(x1, orbit, (get,) if single else get, symmetric=False, **kwargs)
    n2 = x2.shape[0]
    out = {name: gram.reshape(gram.shape[0], group.order, n2, *gram.shape[2:]).mean(axis=1)
           for name, gram in grams.items()}
    return out[get] if single else out


def require_orbit(tg: TypedGraph):
    ok, reason = orbit_precondition(tg)
    if not ok:
        raise SpecError(f"the orbit-average strategy does not apply: {reason}")
