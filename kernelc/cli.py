"""The ``kernelc`` command line: one subcommand per user task (README.md, "What you can do").

Subcommands are entries of :data:`COMMANDS` (name -> (add_parser, run)); modules that own a
task register theirs in :func:`_load_plugins`. Every :class:`KernelcError` is printed as a
diagnostic with exit status 2 — never a traceback. Any other exception is a bug: it is reported
in one line ("kernelc: internal error: ...", exit status 3; KERNELC_TRACEBACK=1 shows the
traceback). Ctrl-C exits with status 130.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from .errors import KernelcError, KernelcWarning

COMMANDS: Dict[str, Tuple[Callable, Callable]] = {}
NO_IDENTITIES = {"R": False, "D": False, "S": False}  # --no-identities: the general path


def command(name: str, help: str):
    """Register ``add_arguments(parser)`` and its ``run(args)`` as subcommand ``name``."""
    def register(add_arguments):
        def wrap(run):
            COMMANDS[name] = (lambda sub: add_arguments(sub.add_parser(name, help=help,
                                                                      description=help)), run)
            return run
        return wrap
    return register


# -- check / graph / groups ---------------------------------------------------------------
def _spec_arg(p):
    # a Path, so that any file name (even one with a newline) is read as a file, never as text
    p.add_argument("spec", type=Path, help="a spec file (.kc; FILE reads FILE.kc when only that exists)")


@command("check", "parse and type-check a spec; print a one-line summary or the errors")(_spec_arg)
def _check(args) -> int:
    from .frontend import check
    tg = check(args.spec)
    print(f"OK  {tg.summary()}")
    return 0


def _graph_args(p):
    _spec_arg(p)
    p.add_argument("--format", choices=("text", "dot"), default="text")


@command("graph", "show the typed layer graph (text, or Graphviz dot)")(_graph_args)
def _graph(args) -> int:
    from .frontend import check
    from .render import graph_dot, graph_text
    tg = check(args.spec)
    print(graph_dot(tg) if args.format == "dot" else graph_text(tg))
    return 0


def _groups_args(p):
    p.add_argument("name", nargs="?", help="show one group's elements in detail")


@command("groups", "list the built-in groups (name, order, generators)")(_groups_args)
def _groups(args) -> int:
    from .render import groups_text
    print(groups_text(args.name))
    return 0


# -- explain / compile / kernel -------------------------------------------------------------
def _explain_args(p):
    _spec_arg(p)
    style = p.add_mutually_exclusive_group()
    style.add_argument("--latex", action="store_true", help="formulas as LaTeX")
    style.add_argument("--markdown", action="store_true", help="a Markdown report")
    p.add_argument("--n", type=int, help="predict memory, FLOPs and time for an N×N Gram matrix")
    p.add_argument("--calibrate", action="store_true",
                   help="with --n: time the compiled network on one tile of random inputs on "
                        "this machine and extrapolate to N (compiles and runs: seconds to "
                        "minutes); without it the time is a rough estimate from a stored "
                        "throughput")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--max-memory", help="memory budget for tiles, e.g. 4GB")
    p.add_argument("--no-identities", action="store_true",
                   help="derive without the symmetry identities (general path)")


@command("explain", "show the derived NNGP/NTK recursion, identities, and cost")(_explain_args)
def _explain(args) -> int:
    from .api import compile
    net = compile(args.spec, identities=NO_IDENTITIES if args.no_identities else None)
    style = "latex" if args.latex else "markdown" if args.markdown else "unicode"
    print(net.explain(n=args.n, style=style, dtype=args.dtype, max_memory=args.max_memory,
                      calibrate=args.calibrate))
    return 0


def _compile_args(p):
    _spec_arg(p)
    p.add_argument("-o", "--output", help="where to write the module "
                   "(default: generated/<spec name>.py)")
    p.add_argument("--no-identities", action="store_true")
    p.add_argument("--standalone", action="store_true",
                   help="inline the kernelc runtime helpers the module uses: it then needs "
                        "only jax and numpy")


@command("compile", "write the generated JAX module for a spec")(_compile_args)
def _compile(args) -> int:
    from .api import compile
    from .methods.data import output_path, write_text
    if args.output is not None:
        out = output_path(args.output, "-o", inputs=[args.spec])
    else:  # the default folder generated/ is created when missing
        out = output_path(Path("generated") / (Path(args.spec).stem + ".py"),
                          "compile (default output)", inputs=[args.spec], create_folder=True)
    net = compile(args.spec, identities=NO_IDENTITIES if args.no_identities else None)
    source = net.source
    if args.standalone:
        from .codegen.standalone import standalone_module
        source = standalone_module(source)
    write_text(out, source)
    kind = "standalone, " if args.standalone else ""
    print(f"wrote {out} ({kind}{len(source.splitlines())} lines): {net.typed.summary()}")
    return 0


def _kernel_args(p):
    _spec_arg(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="FILE.npz", help=".npz file holding the inputs")
    src.add_argument("--random", type=int, metavar="N", help="use N random inputs (demo)")
    p.add_argument("--x", default=None, metavar="KEY",
                   help="array key of the inputs in --data (default: x)")
    p.add_argument("--x2", default=None, metavar="KEY",
                   help="array key of a second input set in --data (cross Gram)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="use only the first N inputs (of --x and of --x2)")
    from .methods.commands import add_image_options, add_map_options
    add_image_options(p)
    p.add_argument("--get", default="nngp,ntk", help="nngp, ntk or nngp,ntk")
    add_map_options(p)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--max-memory", help="memory budget, e.g. 4GB")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the Gram matrices to this .npz")
    p.add_argument("--out-dir", metavar="DIR",
                   help="write the Gram matrices to DIR/nngp.npy, DIR/ntk.npy tile by tile "
                   "(not held in memory); the same command after an interruption computes only "
                   "the missing tiles")
    p.add_argument("--distributed", action="store_true",
                   help="several processes (hosts): start JAX's multi-process runtime first "
                   "(jax.distributed.initialize, which finds SLURM, Open MPI, Kubernetes from "
                   "the environment; e.g. srun kernelc kernel ... --distributed) and split the "
                   "tiles over every process's devices; process 0 prints and writes the results "
                   "(--out-dir: a folder every process sees)")
    p.add_argument("--coordinator", metavar="HOST:PORT",
                   help="with --distributed, outside a detected cluster: process 0's address")
    p.add_argument("--num-processes", type=int, metavar="N",
                   help="with --distributed, outside a detected cluster: how many processes")
    p.add_argument("--process-id", type=int, metavar="I",
                   help="with --distributed, outside a detected cluster: this process's rank")


def _start_distributed(args) -> bool:
    """``kernelc kernel --distributed``: JAX's multi-process runtime, started before any JAX
    computation (kernelc starts it here only, never at import: a library call leaves the launch
    to the user's script). Returns whether this process prints and writes the results (process
    0, or the only process); a runtime that cannot start raises InputError saying how to launch."""
    from .errors import InputError
    manual = {"coordinator_address": args.coordinator, "num_processes": args.num_processes,
              "process_id": args.process_id}
    if not args.distributed:
        if any(v is not None for v in manual.values()):
            raise InputError("--coordinator, --num-processes and --process-id go with "
                             "--distributed")
        return True
    import jax
    try:
        jax.distributed.initialize(**{k: v for k, v in manual.items() if v is not None})
    except (ValueError, RuntimeError, TypeError) as exc:
        raise InputError(
            f"--distributed: JAX could not start its multi-process runtime ({exc}); launch one "
            "process per host under srun (SLURM) or mpirun (Open MPI), or give --coordinator "
            "HOST:PORT --num-processes N --process-id I to each process") from None
    return jax.process_index() == 0


@command("kernel", "compute NNGP/NTK Gram matrices of a spec on data")(_kernel_args)
def _kernel(args) -> int:
    import numpy as np
    from .api import compile
    from .errors import InputError, MemoryBudgetError
    from .methods.data import output_path, save_npz
    first = _start_distributed(args)  # before anything JAX does
    if args.out is not None and args.out_dir is not None:
        raise InputError("--out writes one .npz and --out-dir a folder of .npy files; give one")
    out = None if args.out is None else \
        output_path(args.out, "--out", suffix=".npz", inputs=[args.spec, args.data])
    from .methods.commands import image_preprocessing, refuse_preprocessing_of_random
    preprocessing = image_preprocessing(args)
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be a positive number of inputs, got {args.limit}")
    get = tuple(g.strip() for g in args.get.split(",") if g.strip())
    if not get or any(g not in ("nngp", "ntk") for g in get):  # refused as "get" after loading
        raise InputError(f"--get takes nngp, ntk or nngp,ntk, got {args.get!r}")
    net = compile(args.spec)
    from .methods.commands import map_setting
    fast_maps = map_setting(args, [net])
    shape = net.typed.spec.input.shape + (net.typed.spec.input.channels,)
    x2 = None
    if args.random is not None:
        if args.random < 1:
            raise InputError("--random needs at least one input")
        if args.seed < 0:
            raise InputError(f"--seed must be ≥ 0, got {args.seed}")
        if args.x is not None or args.x2 is not None:
            raise InputError("--x and --x2 choose arrays of --data; --random draws its inputs")
        refuse_preprocessing_of_random(args, preprocessing)
        n = args.random if args.limit is None else min(args.random, args.limit)
        # the budget first: --random 1000000 on 64×64 images used to allocate 32 GB of inputs
        # (or die in numpy) before the Gram matrix's estimate refused it
        plan = net.module.plan_memory(n, dtype=args.dtype, max_memory=args.max_memory)
        input_bytes = n * int(np.prod(shape)) * 8
        if input_bytes > plan["budget"]:
            raise MemoryBudgetError(f"--random {args.random} needs {input_bytes / 2**30:.1f} GiB "
                                    "of inputs alone, more than the memory budget of "
                                    f"{plan['budget'] / 2**30:.1f} GiB")
        x1 = np.random.default_rng(args.seed).normal(size=(n,) + shape)
    else:
        from .methods.data import CLI_KEYS, prepare_images, read_npz, read_split
        arrays = read_npz(args.data)  # read once for --x and --x2
        x1, _, key1, _ = read_split(args.data, None, args.x, None, choose=CLI_KEYS, arrays=arrays)
        key2 = None
        if args.x2:
            x2, _, key2, _ = read_split(args.data, None, args.x2, None, arrays=arrays,
                                        choose={**CLI_KEYS, "x": CLI_KEYS["x2"]})
        if x2 is not None and (x1.dtype == np.uint8) != (x2.dtype == np.uint8):
            # uint8 images are scaled to [0, 1] and float ones are not: identical images in
            # the two dtypes would silently give different kernels
            raise InputError(f"--x ({x1.dtype}) and --x2 ({x2.dtype}) have different dtypes; "
                             "uint8 images are scaled by 1/255 and float ones are not, so give "
                             "both in one dtype")
        if args.limit is not None:
            x1 = x1[:args.limit]
            x2 = None if x2 is None else x2[:args.limit]
        spec = net.typed.spec
        x1 = prepare_images(x1, spec.input, f"inputs {args.data}:'{key1}'", preprocessing,
                            spec.name)
        if x2 is not None:
            x2 = prepare_images(x2, spec.input, f"inputs {args.data}:'{key2}'", preprocessing,
                                spec.name)
        if preprocessing.active:
            print(f"images: {preprocessing.describe()} -> {'×'.join(map(str, x1.shape[1:-1]))}")
    grams = net.kernel_fn(x1, x2, get, dtype=args.dtype, max_memory=args.max_memory,
                          out=args.out_dir, fast_maps=fast_maps)
    if not first:  # every process holds the results; process 0 prints and writes them
        return 0
    from .render import print_grams
    print_grams(grams)
    if out is not None:
        print(f"wrote {save_npz(out, grams)}")
    if args.out_dir is not None:
        import os
        print("wrote " + ", ".join(os.path.join(args.out_dir, f"{g}.npy") for g in get))
    return 0


def _load_plugins():
    """Subcommands owned by other modules (verify, fit, predict, augment)."""
    from .methods.commands import add_augment_parser, add_fit_parser, add_predict_parser
    from .verify import add_verify_parser, verify_command
    COMMANDS["verify"] = (add_verify_parser, verify_command)
    for hook in (add_fit_parser, add_predict_parser, add_augment_parser):
        hook(COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = argparse.ArgumentParser(
        prog="kernelc", description="Compile group-equivariant CNN specs into exact "
        "infinite-width NNGP/NTK kernels.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"kernelc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        COMMANDS[name][0](sub)
    return parser


def _terminal_text(text: str) -> str:
    """``text`` with control characters other than newline and tab escaped, so that a hostile
    file name in a message cannot move the cursor or recolour the terminal."""
    return "".join(ch if ch in "\n\t" or ch.isprintable() or ch == " " else
                   ascii(ch)[1:-1] for ch in text)


def _command_line(argv: Optional[list]) -> str:
    words = ["kernelc"] + [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    return _terminal_text(shlex.join(words))


def _run(argv: Optional[list]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 1
    return COMMANDS[args.command][1](args) or 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """kernelc's own warnings (PrecisionWarning, QuadratureWarning) as one line for CLI users,
    without the Python source location; others as Python prints them."""
    if issubclass(category, KernelcWarning):
        print(_terminal_text(f"kernelc: warning: {message}"), file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line),
              file=sys.stderr, end="")


def main(argv: Optional[list] = None) -> int:
    """Run one command; the exit status: 0 success, 1 a check failed (or no command), 2 a user
    error (a :class:`KernelcError`, printed without a traceback), 3 an internal error, 130
    interrupted."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _run(argv)
    except KernelcError as exc:
        print(_terminal_text(str(exc)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into head: stop quietly
        try:  # and keep Python from complaining while it flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 0
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug, reported in one line
        if os.environ.get("KERNELC_TRACEBACK"):
            import traceback
            traceback.print_exc()
        msg = " ".join(str(exc).split()) or "(no message)"
        print(_terminal_text(f"kernelc: internal error: {type(exc).__name__}: {msg}"),
              file=sys.stderr)
        print("this is a bug in kernelc; please report it with the command "
              f"({_command_line(argv)}) and its input files (KERNELC_TRACEBACK=1 shows the "
              "traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
