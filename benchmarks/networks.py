"""What the peer and scale benchmarks share: the paper's networks as spec templates, and the
check that a peer's environment imports (numpy-free, kernelc-free: the peers' own python
imports this module too).

``GCNN``: lift 3×3, relu, 2 × (gconv 3×3, relu), group pool, dense(1), on the group ``g``;
``CNN``: the same shape on Z², global average pooling. Both take ``s`` (image side), ``c``
(channels), ``w`` and ``b`` (W_std, b_std of every filter layer), ``name``.
"""
import subprocess

W_STD, B_STD = 1.4, 0.1
GCNN = """network {name}
group {g}
input {s} x {s} channels {c}
lift(size=3, W_std={w}, b_std={b}, padding=same)
relu
repeat 2 {{ gconv(size=3, W_std={w}, b_std={b}, padding=same)  relu }}
group_pool
dense(1, W_std=1.0)
"""
CNN = """network {name}
group Z2
input {s} x {s} channels {c}
conv(size=3, W_std={w}, b_std={b}, padding=same)
relu
repeat 2 {{ conv(size=3, W_std={w}, b_std={b}, padding=same)  relu }}
avg_pool
flatten
dense(1, W_std=1.0)
"""


def import_failure(python, code):
    """Why the interpreter ``python`` cannot run ``code`` (its imports): the last line of its
    error, or None when it can."""
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} does not run: {exc}"
    if proc.returncode == 0:
        return None
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit status {proc.returncode}"
