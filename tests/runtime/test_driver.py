"""The tiled driver: passes compiled once per shape, and a long compilation announced with its
estimate before XLA starts (kernelc.runtime.driver.CompiledPass)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernelc
from kernelc.runtime import driver

SPEC = "network tiny\ngroup p4\ninput 3 x 3 channels 1\nlift(size=3)\nrelu\ngroup_pool\ndense(1)\n"


@pytest.fixture(scope="module")
def net():
    return kernelc.compile(SPEC)


def test_count_operations_enters_loop_bodies():
    def body(c, x):
        return c + jnp.sin(x) * 2.0, None

    jaxpr = jax.make_jaxpr(lambda xs: jax.lax.scan(body, 0.0, xs)[0] + 1.0)(jnp.ones(3))
    inner = len(jaxpr.jaxpr.eqns[0].params["jaxpr"].jaxpr.eqns)  # sin, mul, (convert), add
    assert inner >= 3
    assert driver.count_operations(jaxpr.jaxpr) == 2 + inner  # scan and add outside


def test_a_long_compilation_is_announced_with_its_estimate(net, monkeypatch, capsys):
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 1))
    monkeypatch.setattr(driver, "COMPILE_NOTICE_SECONDS", 0.0)  # every compilation is "long"
    net.kernel_fn(x, get="nngp", progress=True, check_precision=False)
    err = capsys.readouterr().err
    assert err.count("kernelc: compiling the kernel pass for float32 (") == 1  # self pairs, tiles
    assert "array operations, ~" in err and "s estimated; once per tile size)\n" in err
    assert err.count("kernelc: compiled the kernel pass in ") == 1
    assert driver.COMPILE_SECONDS_PER_OPERATION[0] > 0  # measured by these compilations
    net.kernel_fn(x, get="nngp", progress=True, check_precision=False)  # compiled: no notice
    assert "compiling" not in capsys.readouterr().err
    net.kernel_fn(x, get="nngp", dtype="float64", progress=False, check_precision=False)
    assert capsys.readouterr().err == ""  # progress off: silent


def test_xla_compiles_in_the_background_while_the_next_pass_is_traced(monkeypatch):
    """The memory plan lowers the pass at every size the call uses before it reads any
    report (here 8 inputs of x and 24 of x2 and the Gram tiles): the first size's XLA
    compilation (in a kernelc-compile thread) runs while the second is traced; a
    compilation's failure reaches the caller as itself."""
    import threading
    net = kernelc.compile(SPEC.replace("tiny", "tiny_background"))  # passes of its own
    events, compile_lowered = [], driver.compile_lowered

    both_lowered = threading.Event()

    def slow(lowered, leaves):  # the first compilation lasts until the second size is lowered
        events.append(("compile starts", threading.current_thread().name))
        both_lowered.wait(timeout=60)  # (a driver that waited for it first fails, not hangs)
        events.append(("compile ends", threading.current_thread().name))
        return compile_lowered(lowered, leaves)

    lower = jax.stages.Traced.lower

    def traced_lower(self, *a, **k):
        events.append(("lower", threading.current_thread().name))
        try:
            return lower(self, *a, **k)
        finally:
            if sum(e[0] == "lower" for e in events) >= 2:
                both_lowered.set()
    monkeypatch.setattr(driver, "compile_lowered", slow)
    monkeypatch.setattr(jax.stages.Traced, "lower", traced_lower)
    x = np.random.default_rng(0).normal(size=(3, 3, 3, 1))
    x2 = np.random.default_rng(1).normal(size=(20, 3, 3, 1))
    net.kernel_fn(x, x2, get="nngp", progress=False, check_precision=False)
    main = threading.current_thread().name
    assert [e for e in events if e[0] == "lower"] == [("lower", main)] * 2
    assert {name for what, name in events if what != "lower"} <= \
        {t.name for t in threading.enumerate() if t.name.startswith("kernelc-compile")}
    # the second lowering (24 pairs) came before the first compilation ended
    assert events.index(("lower", main), 1 + events.index(("lower", main))) < \
        next(i for i, e in enumerate(events) if e[0] == "compile ends")

    def failing(lowered, leaves):
        raise RuntimeError("XLA refused this")
    monkeypatch.setattr(driver, "compile_lowered", failing)
    with pytest.raises(RuntimeError, match="XLA refused this"):
        net.kernel_fn(x, get="nngp", progress=False, check_precision=True)  # new passes


def test_tiles_take_few_sizes():
    """count·{2^k, 3·2^k} items: the largest not above the budget's tile, or the smallest
    holding all (less than 3/2 of the items)."""
    one = driver.Placement([jax.devices()[0]])
    assert [one.tile(4096, n) for n in (1, 2, 3, 5, 9, 17, 20, 36, 190, 256, 257, 10 ** 6)] == \
        [8, 8, 8, 8, 12, 24, 24, 48, 192, 256, 384, 4096]  # at least MIN_TILE = 8
    assert one.tile(300, 10 ** 6) == 256 and one.tile(400, 10 ** 6) == 384
    assert one.tile(0, 5) == 1 and one.tile(1, 5) == 1 and one.tile(3, 5) == 3  # the budget
    for n in range(1, 3000):  # never more than 3/2 of the items (above 8), two per octave
        size = one.tile(10 ** 6, n)
        assert n <= size <= max(8, 3 * n // 2 + 1)


def _unpadded(net, x):
    """The Gram matrices from the module's _propagate on all pairs at once (no tiles, no
    padding), float64."""
    propagate = jax.jit(net.module._propagate, static_argnums=4)
    with driver.x64_context("float64"):
        xs = jnp.asarray(x, jnp.float64)
        k1, t1, stats = propagate(xs, xs, None, None, True)
        I, J = np.triu_indices(len(x), 1)
        k, t = propagate(xs[I], xs[J], [s[I] for s in stats], [s[J] for s in stats], True)[:2]
        grams = {}
        for name, diag, off in (("nngp", k1, k), ("ntk", t1, t)):
            gram = np.zeros((len(x), len(x)) + tuple(diag.shape[1:]))
            gram[I, J] = gram[J, I] = np.asarray(off)
            gram[np.arange(len(x)), np.arange(len(x))] = np.asarray(diag)
            grams[name] = gram
    return grams


def test_a_learning_curve_reuses_the_compiled_tiles(net):
    """N = 20, 19, 18, 17 (a learning curve): one compilation of the pass for the first N (the
    self pairs and the Gram tiles share it), none after (the tiles are padded to 24 inputs and
    24 pairs), and the padded results equal the unpadded computation."""
    pass_fn = net.kernel_fn.compiled_passes[True, True, None]
    x = np.random.default_rng(3).normal(size=(20, 3, 3, 1))
    before = pass_fn.compilations
    counts = []
    for n in (20, 19, 18, 17):
        grams = net.kernel_fn(x[:n], dtype="float64", progress=False)
        counts.append(pass_fn.compilations - before)
        if n == 17:  # the most padding: 17 of 24 inputs, 136 pairs in 6 tiles of 24
            expected = _unpadded(net, x[:n])
            for name in ("nngp", "ntk"):
                np.testing.assert_allclose(grams[name], expected[name], rtol=1e-13, atol=0)
    assert counts == [1] * 4  # compiled for N = 20, reused for 19, 18, 17


def test_the_tile_fits_the_budget_by_xlas_own_report(net):
    """plan_memory(compiled=True) sizes the tile by XLA's memory_analysis of the compiled passes
    plus the driver's buffers: the predicted peak is within the budget, a budget just below it
    gets a smaller tile, and one below the driver's own buffers is refused with the numbers."""
    plan = net.module.plan_memory(40, None, "float64", "1GB", True, compiled=True)
    assert plan["measured"] and plan["tile_pairs"] == 48  # 40 inputs, 780 pairs: tiles of 48
    pass_fn = net.kernel_fn.compiled_passes[True, True, None]
    sizes = {key[1][0][0][0]: driver.compiled_bytes(c) for key, c in pass_fn.compiled.items()}
    assert plan["tile_bytes"] >= sizes[48] > 0  # XLA's report of the tile that runs
    budget = plan["peak_bytes"] - 1
    smaller = net.module.plan_memory(40, None, "float64", budget, True, compiled=True)
    assert smaller["tile_pairs"] < plan["tile_pairs"] and smaller["peak_bytes"] <= budget
    with pytest.raises(driver.MemoryBudgetError,
                       match=r"needs at least .* for the driver .* more than the budget of 1000 B"):
        net.module.plan_memory(40, None, "float64", 1000, True, compiled=True)


def test_the_default_budget_respects_the_cgroup_limit(tmp_path, monkeypatch):
    from kernelc import hostmem
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text("1073741824\n")
    usage.write_text(f"{200 << 20}\n")
    monkeypatch.setattr(hostmem, "CGROUP_FILES", ((str(limit), str(usage)),))
    monkeypatch.delenv("KERNELC_MAX_MEMORY", raising=False)
    assert driver.available_memory() <= (1 << 30) - (200 << 20)
    assert driver.budget_bytes(None) == int(driver.available_memory() * 0.5)
    limit.write_text("max\n")  # cgroup v2 without a limit
    assert driver.available_memory() > (1 << 30) - (200 << 20)  # this machine has more


def test_a_devices_own_memory_bounds_the_tile():
    """GPU/TPU devices report their allocator's limit and use (memory_stats); CPU reports none."""
    class Accelerator:
        def __init__(self, limit, used):
            self.stats = {"bytes_limit": limit, "bytes_in_use": used}

        def memory_stats(self):
            return self.stats

    assert driver.device_free_memory([Accelerator(10 << 30, 3 << 30),
                                      Accelerator(10 << 30, 1 << 30)]) == 7 << 30
    assert driver.device_free_memory(jax.devices("cpu")) is None


def test_kernel_fn_checks_its_gram_matrices_for_psd(net, monkeypatch):
    """kernel_fn hands the Gram matrices of x1 with itself to runtime.psd, not cross matrices."""
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 1))
    seen = []
    monkeypatch.setattr(driver, "check_grams", lambda grams, dtype: seen.append(sorted(grams)))
    net.kernel_fn(x, x[:1], get="nngp", check_precision=False)
    assert seen == []
    net.kernel_fn(x, get="nngp", check_precision=False)
    assert seen == [["nngp"]]


def _inner_products(xa, xb, stats_a, stats_b, want_ntk, params=None, self_pairs=None):
    """A module's _propagate in miniature: per pair Σ xa·xb, the variances Σ x² as its stats
    (of xa for a self pair, else stats_a's)."""
    k = jnp.sum(xa * xb, axis=(1, 2))
    own = jnp.sum(xa * xa, axis=(1, 2))
    stats = [own if stats_a is None else jnp.where(self_pairs[:, None], own, stats_a[0])]
    return k, (k if want_ntk else None), stats


def test_the_tile_keeps_the_familys_working_set():
    """With tile_working_set (a family's {platform: bytes}, a module's TILE_WORKING_SET), the
    tile is the largest size count·s whose compiled passes XLA reports at ≤ that many bytes per
    device: here exactly the report of 64 pairs, so 64 and not 96; a target no tile meets gives
    the smallest tile (1 pair), not an error; an unlisted platform or None sets no target."""
    shape = (64, 64, 1)

    def driver_with(target):
        return driver.tiled_kernel(_inner_products, shape, ("vector", 0, None), 4 * 64 * 64, 1,
                                   ((1,),), tile_working_set=target)

    kernel_fn, plan = driver_with(None)
    pass_fn = kernel_fn.compiled_passes[True, True, None]
    one = driver.Placement()

    def report(size):  # what the plan reads: the pass's report at that size
        x = one.like((size,) + shape, "float32")
        sa = [one.like((size, 1), "float32")]
        return pass_fn.memory(x, x, sa, sa, one.like((size,), bool))

    target = report(64)
    assert report(96) > target
    assert plan(200, compiled=True)["tile_pairs"] == 256  # 200 inputs: tiles of 256
    _, plan = driver_with({"cpu": target, "gpu": 1})
    assert plan(200, compiled=True)["tile_pairs"] == 64
    _, plan = driver_with({"cpu": 1})
    assert plan(200, compiled=True)["tile_pairs"] == 1
    cpu = jax.devices("cpu")
    assert driver.working_set_cap({"cpu": 5, "gpu": 7}, cpu) == 5
    assert driver.working_set_cap({"gpu": 7}, cpu) is None
    assert driver.working_set_cap(None, cpu) is None


def test_so3_modules_state_their_familys_working_set():
    """The SO(3) family declares its measured tile working set (CPU); generated modules state
    their family's as TILE_WORKING_SET (None for the lattice family) and pass it to the driver
    (generated/ is what kernelc compile writes: tests/test_generated.py)."""
    from pathlib import Path
    from kernelc.families.so3 import SO3_FAMILY
    assert SO3_FAMILY.tile_working_set == {"cpu": 24 << 20}
    generated = Path(__file__).resolve().parents[2] / "generated"
    for name, value in (("so3_qm9", {"cpu": 24 << 20}), ("mnist_p4", None)):
        text = (generated / f"{name}.py").read_text()
        assert f"TILE_WORKING_SET = {value!r}" in text
        assert "tile_working_set=TILE_WORKING_SET)" in text


def _einsum_pass():
    a = jnp.ones((2, 4, 4, 3), jnp.float32)
    return jax.jit(lambda u, v: jnp.einsum("pabz,pcdz->pabcd", u, v)).trace(a, a).lower(), a


def test_cpu_passes_compile_with_kernelcs_xla_options():
    """On CPU devices the passes take CPU_COMPILER_OPTIONS (per executable): with the option
    known to this jaxlib, XLA's YNNPACK fusion (jax >= 0.8) is not in the compiled program,
    and the result is the plain compilation's."""
    lowered, a = _einsum_pass()
    compiled = driver.compile_lowered(lowered, [a, a])
    if "xla_cpu_experimental_ynn_fusion_type" not in driver.COMPILER_OPTIONS_UNKNOWN:
        assert "__ynn_fusion" not in compiled.as_text()
    np.testing.assert_allclose(compiled(a, a), lowered.compile()(a, a), rtol=1e-6)


def test_an_xla_option_this_jaxlib_lacks_is_dropped(monkeypatch):
    monkeypatch.setitem(driver.CPU_COMPILER_OPTIONS, "xla_cpu_no_such_option_of_kernelc", True)
    monkeypatch.setattr(driver, "COMPILER_OPTIONS_UNKNOWN", {})
    lowered, a = _einsum_pass()
    assert driver.compile_lowered(lowered, [a, a])(a, a).shape == (2, 4, 4, 4, 4)
    assert "xla_cpu_no_such_option_of_kernelc" in driver.COMPILER_OPTIONS_UNKNOWN


def test_an_xla_option_value_this_jaxlib_refuses_drops_the_options(monkeypatch):
    monkeypatch.setitem(driver.CPU_COMPILER_OPTIONS, "xla_cpu_use_fusion_emitters", "not a bool")
    monkeypatch.setattr(driver, "COMPILER_OPTIONS_UNKNOWN", {})
    lowered, a = _einsum_pass()
    assert driver.compile_lowered(lowered, [a, a])(a, a).shape == (2, 4, 4, 4, 4)
    assert set(driver.COMPILER_OPTIONS_UNKNOWN) == set(driver.CPU_COMPILER_OPTIONS)


def test_one_pass_serves_self_pairs_and_gram_pairs_in_one_tile(net):
    """The compiled pass on a tile that mixes self pairs (flagged: variances off their own
    diagonal) and other pairs (variances from the self pass) gives each pair what the tiled
    driver gives it: the Gram diagonal bit for bit for the self pairs, the off-diagonal
    entries for the others; and a Gram matrix compiles the pass once (one shape)."""
    x = np.random.default_rng(5).normal(size=(4, 3, 3, 1))
    pass_fn = net.kernel_fn.compiled_passes[True, True, None]
    before = pass_fn.compilations
    with driver.x64_context("float64"):
        grams = net.kernel_fn(x, dtype="float64", progress=False)
        assert pass_fn.compilations - before == 1  # 4 inputs and 6 pairs: one tile size, 8
        zeros = [np.zeros((4,) + shape) for shape in net.module.STATS_SHAPES]
        _, _, stats = pass_fn(x, x, zeros, zeros, np.ones(4, bool))
        stats = [np.asarray(s) for s in stats]
        i, j = np.array([0, 1, 0, 2, 3, 2, 1, 3]), np.array([0, 1, 3, 2, 3, 0, 2, 1])
        k, t, _ = pass_fn(x[i], x[j], [s[i] for s in stats], [s[j] for s in stats], i == j)
    for name, values in (("nngp", np.asarray(k)), ("ntk", np.asarray(t))):
        same = i == j
        np.testing.assert_array_equal(values[same], grams[name][i[same], j[same]])
        np.testing.assert_allclose(values[~same], grams[name][i[~same], j[~same]],
                                   rtol=1e-14, atol=0)
