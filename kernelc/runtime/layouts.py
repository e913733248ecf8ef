"""Kernel layouts at run time: the input kernel, diagonals and the per-site variances that a
nonlinearity reads, for each storage layout (``box_full``, ``box_diag``, ``group_reduced``,
``group_general``, ``group_diag``, ``vector``, ``so3_reduced``, ``so3_general``; see
:mod:`kernelc.ir.plan`). jax and numpy only.
"""
import numpy as np
import jax.numpy as jnp

__all__ = ["input_full", "input_diag", "diag_full", "diag_general", "variances",
           "self_diagonal", "pair_variances"]

LETTERS = "abcdefghijklmnopqrstuvw"


def input_full(xa, xb, d):
    """K0[t, t'] = (1/C) Σ_c f_c(t) f'_c(t') for each pair (xa[p], xb[p])."""
    s1, s2 = LETTERS[:d], LETTERS[d:2 * d]
    return jnp.einsum(f"p{s1}z,p{s2}z->p{s1}{s2}", xa, xb) / xa.shape[-1]


def input_diag(xa, xb):
    """K0[t, t] = (1/C) Σ_c f_c(t) f'_c(t)."""
    return jnp.mean(xa * xb, axis=-1)


def diag_full(k, d):
    """(p, *box, *box) -> (p, *box): the entries K[t, t]."""
    box = k.shape[1:1 + d]
    n = int(np.prod(box))
    return jnp.diagonal(k.reshape(k.shape[0], n, n), axis1=1, axis2=2).reshape(k.shape[:1] + box)


def diag_general(k, d):
    """(p, H, *box, H, *box) -> (p, H, *box): the entries K[(t,r), (t,r)]."""
    head = k.shape[1:2 + d]
    n = int(np.prod(head))
    return jnp.diagonal(k.reshape(k.shape[0], n, n), axis1=1, axis2=2).reshape(k.shape[:1] + head)


def variances(kind, d, va, vb):
    """Broadcast per-site variances of the two inputs against a kernel of layout ``kind``."""
    if kind in ("box_diag", "group_diag", "vector"):
        return va, vb
    if kind == "so3_reduced":  # one variance K̃(e) per input, for every grid entry
        return va[:, None], vb[:, None]
    if kind == "so3_general":  # K[g_i, g_i] per grid point: (p, N) against (p, N, N)
        return va[:, :, None], vb[:, None, :]
    if kind == "box_full":
        return va.reshape(va.shape + (1,) * d), vb.reshape(vb.shape[:1] + (1,) * d + vb.shape[1:])
    if kind == "group_reduced":
        return (va.reshape(va.shape[:1] + (1,) + va.shape[1:] + (1,) * d),
                vb.reshape(vb.shape[:1] + (1,) * (d + 1) + vb.shape[1:]))
    # group_general: va, vb are (p, H, *box)
    return (va.reshape(va.shape + (1,) * (d + 1)),
            vb.reshape(vb.shape[:1] + (1,) * (d + 1) + vb.shape[1:]))


def self_diagonal(kind, d, k):
    """The variances K[g, g](f, f) of a self-pair kernel of layout ``kind``."""
    if kind in ("box_diag", "group_diag", "vector"):
        return k
    if kind == "box_full":
        return diag_full(k, d)
    if kind == "group_reduced":
        return diag_full(k[:, 0], d)  # K[(t,r),(t,r)] = K̃[t,t](e), the same for every r
    if kind == "so3_reduced":
        return k[:, -1]  # K̃(e), stored after the grid values (e is not a grid point)
    if kind == "so3_general":
        return jnp.diagonal(k, axis1=1, axis2=2)
    return diag_general(k, d)


def pair_variances(kind, d, k, stats_a, stats_b, index, self_pairs):
    """(v_a, v_b): the per-site variances K[g,g](f,f) of both inputs of each pair, at the
    nonlinearity ``index`` of a kernel ``k`` of layout ``kind``: a self pair (x, x) reads its
    own diagonal (bit for bit its covariances: correlation-1 sites stay exact), any other pair
    ``stats_a[index]``, ``stats_b[index]`` (from the self pass). ``self_pairs``: True (all),
    None or False (none), or booleans (pairs,): one compiled pass serves both kinds of tile."""
    if self_pairs is True:
        v = self_diagonal(kind, d, k)
        return v, v
    if self_pairs is None or self_pairs is False:
        return stats_a[index], stats_b[index]
    v = self_diagonal(kind, d, k)
    pick = jnp.reshape(self_pairs, (-1,) + (1,) * (v.ndim - 1))
    return jnp.where(pick, v, stats_a[index]), jnp.where(pick, v, stats_b[index])


def _swap_slots(values, first, second):
    """Exchange two equal-length groups of axes (the two slots of a pair kernel)."""
    order = list(range(values.ndim))
    for a, b in zip(first, second):
        order[a], order[b] = order[b], order[a]
    return values.transpose(order)


#: The layouts whose kernels identity (S) mirrors (:func:`mirror_pairs`); a literal, so that
#: standalone modules may hold it (tables of functions are not emitted at the top level).
MIRRORED_LAYOUTS = ("vector", "box_full", "group_general", "group_reduced", "box_diag",
                    "group_diag")


def mirror_pairs(values, spec):
    """The kernels of the pairs (x_j, x_i) from those of (x_i, x_j), ``values`` of shape
    (p, *layout shape) (numpy or jax), identity (S); ``spec`` = (layout kind, d, inverse),
    ``inverse[q]`` the index of q⁻¹ (a generated module's OUTPUT_MIRROR), one entry per layout
    of :data:`MIRRORED_LAYOUTS`."""
    kind, d, inverse = spec
    swaps = {
        # K_ji = K_ij: one number per pair
        "vector": lambda v: v,
        # K_ji[t,t'] = K_ij[t',t]: swap the slots
        "box_full": lambda v: _swap_slots(v, range(1, 1 + d), range(1 + d, 1 + 2 * d)),
        # K_ji[(t,r),(t',r')] = K_ij[(t',r'),(t,r)]: swap the slots
        "group_general": lambda v: _swap_slots(v, range(1, 2 + d), range(2 + d, 3 + 2 * d)),
        # K̃_ji[t,t'](q) = K_ij[(t',q),(t,e)] = K̃_ij[t',t](q⁻¹) (right invariance, s = q⁻¹)
        "group_reduced": lambda v: _swap_slots(v, range(2, 2 + d),
                                               range(2 + d, 2 + 2 * d))[:, np.asarray(inverse)],
        # K_ji[t,t] = K_ij[t,t]
        "box_diag": lambda v: v,
        "group_diag": lambda v: v,
    }
    return swaps[kind](values)
