"""Helpers shared by the compiler tests: spec text from the reference's layer dicts, a cache of
compiled networks (jit compilation dominates the test time), inputs, the error metric."""
from __future__ import annotations

import functools

import numpy as np

import kernelc

from tests.reference.lattice_reference import hex_domain_sites

GENERAL = {"R": False, "D": False, "S": False}
ALL_ON = {"R": True, "D": True, "S": True}

# point-group generators written out again here (the reference gets them from the test, never
# from kernelc's registry)
GENERATORS = {
    "Z2": [],
    "Z3": [],
    "p2": [[[-1, 0], [0, -1]]],
    "p4": [[[0, -1], [1, 0]]],
    "p4m": [[[0, -1], [1, 0]], [[1, 0], [0, -1]]],
    "p6": [[[0, -1], [1, 1]]],
    "O": [[[1, 0, 0], [0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]],
    "c2v": [[[-1, 0], [0, 1]], [[1, 0], [0, -1]]],
}
LATTICE = {"p6": "hexagonal"}


# layer dicts of the reference's spec language (3×3 supports unless given)
def lift(**kw):
    return {"kind": "lift", "size": 3, **kw}


def gconv(**kw):
    return {"kind": "gconv", "size": 3, **kw}


def conv(**kw):
    return {"kind": "conv", "size": 3, **kw}


def group_line(name: str) -> str:
    if name == "c2v":
        return "group c2v = generators [[-1, 0], [0, 1]], [[1, 0], [0, -1]]"
    return f"group {name}"


def _num(v) -> str:
    return repr(float(v))


def statement(layer: dict) -> str:
    """Spec-language text of one reference layer dict."""
    kind = layer["kind"]
    if kind in ("lift", "conv", "gconv"):
        args = [f"size={layer.get('size', 3)}", f"W_std={_num(layer.get('W_std', 1.0))}",
                f"b_std={_num(layer.get('b_std', 0.0))}",
                f"padding={layer.get('padding', 'same')}"]
        if layer.get("rotation_indices") is not None:
            args.append("rotations=[" + ", ".join(map(str, layer["rotation_indices"])) + "]")
        if layer.get("width") is not None:
            args.append(f"width={layer['width']}")
        return f"{kind}(" + ", ".join(args) + ")"
    if kind == "dense":
        return (f"dense({layer.get('width', 1)}, W_std={_num(layer.get('W_std', 1.0))}, "
                f"b_std={_num(layer.get('b_std', 0.0))})")
    if kind == "residual":
        if "body" in layer:
            return "residual { " + " ".join(statement(s) for s in layer["body"]) + " }"
        return "residual { " + " ".join(
            "branch { " + " ".join(statement(s) for s in b) + " }" for b in layer["branches"]) + " }"
    if kind == "concat":
        return "concat { " + " ".join(
            "branch { " + " ".join(statement(s) for s in b) + " }" for b in layer["branches"]) + " }"
    if kind == "leaky_relu":
        return f"leaky_relu({layer['slope']})"
    if kind == "avg_pool" and layer.get("size") is not None:
        stride = f", stride={layer['stride']}" if layer.get("stride") is not None else ""
        return f"avg_pool(size={layer['size']}{stride})"
    if kind == "swish":
        return f"phi(x*sigmoid(x), degree={layer['points']})"
    if "degree" in layer:  # Gauss–Hermite points of kernelc's quadrature for this φ
        return f"{kind}(degree={layer['degree']})"
    return kind  # relu, erf, gelu, sin, cos, abs, identity, group_pool, flatten, avg_pool


def spec_text(group: str, box, channels: int, layers, parameterization=None) -> str:
    lines = [f"network t_{group}", group_line(group),
             "input " + " x ".join(map(str, box)) + f" channels {channels}"]
    if parameterization:
        lines.append(f"parameterization {parameterization}")
    lines += [statement(layer) for layer in layers]
    return "\n".join(lines) + "\n"


def with_rotation_matrices(layers, kc_group):
    """Copy of ``layers`` where kernelc's rotation indices (the spec language's numbering of
    ``kc_group.elements``) become the matrices the reference takes (``rotations``)."""
    out = []
    for layer in layers:
        layer = dict(layer)
        if layer.get("rotation_indices") is not None:
            layer["rotations"] = [kc_group.elements[i].tolist() for i in layer["rotation_indices"]]
        if "body" in layer:
            layer["body"] = with_rotation_matrices(layer["body"], kc_group)
        if "branches" in layer:
            layer["branches"] = [with_rotation_matrices(b, kc_group) for b in layer["branches"]]
        out.append(layer)
    return out


def _key(identities):
    return tuple(sorted((identities or {}).items()))


@functools.lru_cache(maxsize=None)
def _compiled(text: str, key: tuple):
    return kernelc.compile(text, identities=dict(key))


def compiled(text: str, identities=None):
    """kernelc.compile, cached per (spec text, identities): the jitted functions are reused."""
    return _compiled(text, _key(identities))


def kernels(text: str, identities, x1, x2=None, **kwargs):
    net = compiled(text, identities)
    return net.kernel_fn(x1, x2, get=("nngp", "ntk"), dtype="float64", **kwargs)


def inputs(seed: int, n: int, box, channels: int, lattice: str = "square"):
    """Standard normal inputs (n, *box, channels); zero outside a hexagonal domain."""
    x = np.random.default_rng(seed).standard_normal((n,) + tuple(box) + (channels,))
    if lattice == "hexagonal":
        mask = np.zeros(tuple(box), dtype=bool)
        for s in hex_domain_sites(box[0]):
            mask[s] = True
        x = x * mask[..., None]
    return x


def rel_err(a, b) -> float:
    """max |a − b| / max |b| (relative to the largest entry of the reference b)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.max(np.abs(b))
    return float(np.max(np.abs(a - b)) / (scale if scale > 0 else 1.0))


def element_permutation(ref_elements, kc_elements):
    """perm[i] = index in kernelc's element list of the reference's element i."""
    lookup = {tuple(np.asarray(m).ravel()): i for i, m in enumerate(kc_elements)}
    return np.array([lookup[tuple(np.asarray(m).ravel())] for m in ref_elements])


def ref_to_kernelc_order(K, ref_elements, kc_elements, d):
    """Reorder the element axes of a reference general-layout kernel (N1, N2, E, *box, E, *box)
    into kernelc's element order."""
    perm = element_permutation(ref_elements, kc_elements)
    inv = np.argsort(perm)  # kernelc index j <- reference index inv[j]
    K = np.take(K, inv, axis=2)
    return np.take(K, inv, axis=3 + d)


def reduced_to_general(Kr, group, d):
    """kernelc's reduced layout (N1, N2, H, *box, *box), K̃[t,t'](q) = K[(t,e),(t',q)], expanded to
    (N1, N2, H, *box, H, *box) by K[(t,r),(t',r')] = K̃[t,t'](r' r⁻¹)."""
    H = group.order
    q = np.array([[group.cayley[rp, group.inverse[r]] for rp in range(H)] for r in range(H)])
    out = Kr[:, :, q]  # (N1, N2, H_r, H_rp, *box, *box)
    # move H_rp next to the second box
    return np.moveaxis(out, 3, 3 + d)
