"""Exact Gaussian moments, for the kernel maps of polynomial nonlinearities.

For (u, v) ~ N(0, [[k11, k12], [k12, k22]]), Isserlis' (Wick's) theorem counts the pairings:

    E[u^a v^b] = Σ_k C(a,k) C(b,k) k! k12^k · (a-k-1)!! k11^((a-k)/2) · (b-k-1)!! k22^((b-k)/2),

summed over the k in 0..min(a, b) with a-k and b-k even: k cross pairs (u with v), the remaining
u's paired among themselves and likewise the v's ((-1)!! = 1). For φ(x) = Σ_i c_i x^i,

    K⁺ = E[φ(u) φ(v)] = Σ_{i,j} c_i c_j E[u^i v^j],

an exact polynomial in (k11, k12, k22).
"""
from __future__ import annotations

from typing import Sequence

import sympy


def gaussian_moment(a: int, b: int, k11: sympy.Expr, k12: sympy.Expr, k22: sympy.Expr) -> sympy.Expr:
    """E[u^a v^b] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]) by Isserlis' theorem."""
    if a < 0 or b < 0:
        raise ValueError("moment orders must be non-negative")
    total = sympy.Integer(0)
    for k in range(min(a, b) + 1):
        if (a - k) % 2 or (b - k) % 2:
            continue  # an odd number of u's (or v's) left over cannot be paired
        total += (sympy.binomial(a, k) * sympy.binomial(b, k) * sympy.factorial(k) * k12**k
                  * sympy.factorial2(a - k - 1) * k11**((a - k) // 2)
                  * sympy.factorial2(b - k - 1) * k22**((b - k) // 2))
    return sympy.expand(total)


def polynomial_kernel(coeffs: Sequence[sympy.Expr], k11: sympy.Expr, k12: sympy.Expr,
                      k22: sympy.Expr) -> sympy.Expr:
    """E[φ(u) φ(v)] for φ(x) = Σ_i coeffs[i] x^i (coeffs in increasing degree)."""
    total = sympy.Integer(0)
    for i, ci in enumerate(coeffs):
        if ci == 0:
            continue
        for j, cj in enumerate(coeffs):
            if cj != 0:
                total += ci * cj * gaussian_moment(i, j, k11, k12, k22)
    return sympy.expand(total)
