"""Loading data sets from .npz archives and shaping images for the kernels; writing the
commands' output files.

Kept general (any .npz, any image size, channels first or last) so that a user with other image
data (e.g. the histology sets of the paper) runs the same pipeline as on the shared MNIST subset.

Output files (``compile -o``, ``kernel --out``, ``predict --out``, ``fit --json/--plot``,
``verify --json/--plot``, ``augment --out``) go through :func:`output_path`, which checks the
place before any work is done, and :func:`write_atomic`, which writes a temporary file in the same
folder and renames it over the target: an interrupted or failed run never leaves a truncated file.
"""
from __future__ import annotations

import math
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Callable, Dict, Iterable, NamedTuple, Optional, Tuple

import numpy as np

from ..errors import InputError, MemoryBudgetError, OutputError, did_you_mean

MNIST_FILE = "mnist_test10k.npz"
# kernelc/methods/data.py -> the checkout root is two levels above the package directory.
_REPO_ROOT = Path(__file__).resolve().parents[2]


#: Data files may hold at most this much (all arrays together, as declared in their headers)
#: unless KERNELC_MAX_DATA (e.g. "8GB") or ``max_bytes`` says otherwise: half the machine's memory.
_DEFAULT_DATA_FRACTION = 0.5
_MAX_MEMBERS = 10_000
_UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def _fmt_bytes(n: int) -> str:
    for unit, size in (("TB", 10 ** 12), ("GB", 10 ** 9), ("MB", 10 ** 6), ("kB", 10 ** 3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def parse_bytes(text, what: str = "KERNELC_MAX_DATA") -> int:
    """``"8GB"``, ``"512MiB"``, ``"1e9"`` -> bytes; :class:`InputError` for anything else."""
    raw = str(text).strip().lower().replace(" ", "")
    num = raw.rstrip("kmgtib")
    unit = raw[len(num):]
    try:
        value = float(num) * _UNITS[unit]
    except (ValueError, KeyError):
        raise InputError(f"{what}: cannot read {text!r} as a size; use e.g. 8GB or 512MB") from None
    if not (value > 0 and value < float("inf")):
        raise InputError(f"{what}: the size must be positive, got {text!r}")
    return int(value)


def data_budget() -> int:
    """Bytes a data file may declare: $KERNELC_MAX_DATA, else half the physical memory (8 GB
    where that is unknown)."""
    env = os.environ.get("KERNELC_MAX_DATA")
    if env:
        return parse_bytes(env)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 16 * 10 ** 9
    return int(total * _DEFAULT_DATA_FRACTION)


def _npy_header(fh):
    """(shape, fortran_order, dtype) from the header of an .npy stream, without its data."""
    from numpy.lib import format as npy
    version = npy.read_magic(fh)
    if version == (1, 0):
        return npy.read_array_header_1_0(fh)
    if version == (2, 0):
        return npy.read_array_header_2_0(fh)
    reader = getattr(npy, "_read_array_header", None)
    if reader is None:  # pragma: no cover - numpy without .npy format 3.0
        raise ValueError(f".npy format version {version} is not supported")
    return reader(fh, version)


def _survey_npz(p: Path, budget: int) -> None:
    """Check an .npz archive before loading it: every member is an .npy array whose header can
    be read, none holds objects (pickles), and their declared sizes fit ``budget`` together.
    Only the headers are decompressed, so a zip bomb is refused without inflating it."""
    try:
        with zipfile.ZipFile(p) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if len(members) > _MAX_MEMBERS:
                raise InputError(f"{p} holds {len(members)} files; more than {_MAX_MEMBERS} "
                                 "arrays is not a data set kernelc reads")
            total = 0
            for info in members:
                name = info.filename
                if not name.endswith(".npy"):
                    raise InputError(f"{p}: member '{name}' is not a .npy array; an .npz archive "
                                     "(as np.savez writes it) holds only .npy arrays")
                key = name[:-len(".npy")]
                try:
                    with zf.open(info) as fh:
                        shape, _, dtype = _npy_header(fh)
                except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error,
                        NotImplementedError) as exc:
                    raise InputError(f"{p}: array '{key}' is not a readable .npy array: "
                                     f"{exc}") from None
                if dtype.hasobject:
                    raise InputError(f"{p} cannot be read without pickle (object arrays?): "
                                     f"array '{key}' has dtype {dtype}")
                nbytes = math.prod(shape) * dtype.itemsize
                total += nbytes
                if total > budget:
                    raise MemoryBudgetError(
                        f"{p}: array '{key}' declares shape {tuple(shape)} of {dtype} "
                        f"({_fmt_bytes(nbytes)}); the file's arrays need at least "
                        f"{_fmt_bytes(total)}, more than the budget of {_fmt_bytes(budget)} for "
                        "data files (set KERNELC_MAX_DATA, e.g. KERNELC_MAX_DATA=64GB, to allow "
                        "more)")
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error,
            ValueError, NotImplementedError) as exc:
        raise InputError(f"{p} is not a readable .npz archive: {exc}") from None


def _read_npz(path, max_bytes: Optional[int] = None) -> Dict[str, np.ndarray]:
    """All arrays of an .npz archive (no pickles), with errors a user can act on.

    The archive is surveyed first (:func:`_survey_npz`): members that are not .npy arrays, object
    arrays, and arrays whose declared size exceeds ``max_bytes`` (default :func:`data_budget`)
    are refused before anything is loaded; corrupt data raises :class:`InputError`.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"data file not found: {p}" + (" (it is a directory)" if p.is_dir() else ""))
    # Look at the magic bytes first: np.load's own errors for a wrong format talk about pickles.
    try:
        with open(p, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from None
    if magic == b"\x93NUMPY":
        raise InputError(f"{p} is a single .npy array, expected an .npz archive of named arrays")
    if not magic.startswith(b"PK"):
        raise InputError(f"{p} is not an .npz archive (no zip header)")
    _survey_npz(p, data_budget() if max_bytes is None else int(max_bytes))
    try:
        with np.load(p, allow_pickle=False) as z:
            out = {}
            for k in z.files:
                try:
                    out[k] = z[k]
                except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as exc:
                    raise InputError(f"{p}: array '{k}' cannot be read (the file is corrupt?): "
                                     f"{exc}") from None
            return out
    except ValueError as exc:  # object arrays need pickle, which we refuse for safety
        raise InputError(f"{p} cannot be read without pickle (object arrays?): {exc}") from None
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{p} is not a readable .npz archive: {exc}") from None


def _check_finite(path, key: str, arr: np.ndarray) -> None:
    if np.issubdtype(arr.dtype, np.inexact):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(f"array '{key}' in {path} contains {int(bad.sum())} NaN/inf value(s)")


def _pick(path, arrays: Dict[str, np.ndarray], key: str, param: str) -> np.ndarray:
    if key not in arrays:
        hint = did_you_mean(key, arrays)
        raise InputError(f"no array '{key}' in {path}; available: {', '.join(sorted(arrays)) or '(none)'}"
                         + (f"; {hint}" if hint else f"; pass {param}= to choose one"))
    _check_finite(path, key, arrays[key])
    return arrays[key]


def load_array(path, key: str = "x") -> np.ndarray:
    """One array of an .npz archive, read as :func:`load_arrays` reads (headers surveyed before
    loading, no pickles, finite values); :class:`InputError` names the missing key."""
    return _pick(path, _read_npz(path), key, "key")


def load_arrays(path, x_key: Optional[str] = None, y_key: Optional[str] = None
                ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``(x, y)`` from an .npz archive.

    ``x_key`` defaults to ``'x'``; ``y_key`` defaults to ``'y'`` when the archive has it, else
    ``y`` is ``None`` (unlabelled data). A missing file or key, a non-.npz file, pickled content,
    or NaN/inf in a floating array raises :class:`InputError`.
    """
    arrays = _read_npz(path)
    x = _pick(path, arrays, x_key or "x", "x_key")
    if y_key is None and "y" not in arrays:
        return x, None
    y = _pick(path, arrays, y_key or "y", "y_key")
    if y.shape[:1] != x.shape[:1]:
        raise InputError(f"{path}: x has {x.shape[0]} samples but y has {y.shape[0] if y.ndim else 'no axis'}")
    return x, y


def as_images(x, channels_last: bool = True, dtype=np.float64) -> np.ndarray:
    """Images as (N, H, W, C) (or (N, C, H, W) with ``channels_last=False``) floats.

    A (N, H, W) stack gets a channel axis of size 1. uint8 pixels are scaled by 1/255 into
    [0, 1] (the idx/PNG convention); any other dtype is converted without rescaling, since its
    range is not known.
    """
    arr = np.asarray(x)
    if arr.ndim not in (3, 4):
        raise InputError(f"images must be (N, H, W) or 4-D with a channel axis, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError("no images (N = 0)")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"images must be numeric, got dtype {arr.dtype}")
    out = arr.astype(dtype) / 255.0 if arr.dtype == np.uint8 else arr.astype(dtype)
    if not np.isfinite(out).all():
        raise InputError(f"images contain {int((~np.isfinite(out)).sum())} NaN/inf value(s)")
    if out.ndim == 3:
        out = out[..., None] if channels_last else out[:, None]
    return out


class Dataset(NamedTuple):
    """A train/test split: images as :func:`as_images` returns them, labels as int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _mnist_candidates():
    """Where :func:`load_mnist` looks, in order: $KERNELC_DATA (a file, or a folder holding
    mnist_test10k.npz), then ../shared/data/ next to the checkout."""
    env = os.environ.get("KERNELC_DATA")
    if env:
        p = Path(env).expanduser()
        yield p if p.suffix == ".npz" else p / MNIST_FILE
    yield _REPO_ROOT.parent / "shared" / "data" / MNIST_FILE


def load_mnist(path=None, channels_last: bool = True) -> Dataset:
    """The shared MNIST subset (keys x_train, y_train, x_test, y_test; see shared/data/README.md)
    as a :class:`Dataset` with images in [0, 1] of shape (N, 28, 28, 1)."""
    if path is None:
        tried = list(_mnist_candidates())
        path = next((p for p in tried if p.is_file()), None)
        if path is None:
            raise InputError(f"MNIST data not found; looked in: {', '.join(map(str, tried))}. "
                             "Set KERNELC_DATA to the file or its folder, or pass path=")
    arrays = _read_npz(path)
    parts = {k: _pick(path, arrays, k, "path") for k in Dataset._fields}
    return Dataset(as_images(parts["x_train"], channels_last), parts["y_train"].astype(np.int64),
                   as_images(parts["x_test"], channels_last), parts["y_test"].astype(np.int64))


# =========================================================================== output files
_IMAGE_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp",
                  "pgf", "raw", "rgba")


def output_path(path, flag: str, *, suffix: Optional[str] = None, image: bool = False,
                inputs: Iterable = (), create_folder: bool = False) -> Path:
    """The file a command will write for option ``flag``, checked before any work is done.

    ``suffix`` (e.g. ``".npz"``) is appended when the name lacks it, as ``np.savez`` does, and
    ``image=True`` appends ``.png`` to a name without an extension, as matplotlib does, so the
    returned path is the real file name. Raises :class:`OutputError` when the path is a folder,
    its folder is missing (created instead when ``create_folder``), not a folder or not writable,
    the name has an unknown image format, or it is the same file as one of ``inputs`` (the spec
    and data files the command reads).
    """
    text = os.fspath(path)
    if not text.strip():
        raise OutputError(f"{flag}: empty file name")
    p = Path(text)
    if p.is_dir():
        raise OutputError(f"{flag} {p} is a folder; give a file name")
    if text.endswith(("/", os.sep)):
        raise OutputError(f"{flag} {text} ends with a path separator; give a file name")
    if suffix and not p.name.endswith(suffix):
        p = p.with_name(p.name + suffix)
    if image:
        fmt = p.suffix[1:].lower()
        if not fmt:
            p = p.with_name(p.name + ".png")
        elif fmt not in _IMAGE_FORMATS:
            raise OutputError(f"{flag} {p}: unknown image format '.{fmt}'; use .png, .pdf or .svg")
    if p.is_dir():
        raise OutputError(f"{flag} {p} is a folder; give a file name")
    folder = p.parent
    if not folder.exists() and create_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{flag} {p}: cannot create the folder {folder}: "
                              f"{exc.strerror or exc}") from None
    if not folder.exists():
        raise OutputError(f"{flag} {p}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise OutputError(f"{flag} {p}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {p}: no permission to write in the folder {folder}")
    for source in inputs:
        if source is None:
            continue
        try:
            same = p.exists() and Path(source).exists() and os.path.samefile(p, source)
        except OSError:
            same = False
        if same:
            raise OutputError(f"{flag} {p} is the input file {source}; writing there would "
                              "overwrite it: choose another name")
    return p


def write_atomic(path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then rename it to
    ``path`` (atomic on POSIX and Windows). On any error the temporary file is removed and
    ``path`` is untouched; OS errors become :class:`OutputError`. Returns ``path``."""
    p = Path(path)
    folder = p.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{p.name[:64]}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {p}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        mask = os.umask(0)
        os.umask(mask)
        try:  # mkstemp makes the file private; give it the mode a plain open() would
            mode = os.stat(p).st_mode & 0o7777 if p.exists() else 0o666 & ~mask
        except OSError:
            mode = 0o666 & ~mask
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {p}: {exc.strerror or exc}") from None
        raise
    return p


def write_text(path, text: str) -> Path:
    """``text`` as UTF-8 to ``path``, atomically."""
    return write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def save_npz(path, arrays: Dict[str, np.ndarray]) -> Path:
    """``np.savez(path, **arrays)`` atomically; like np.savez, ``.npz`` is appended to a name
    without it. Returns the file name written."""
    p = Path(path)
    if not p.name.endswith(".npz"):
        p = p.with_name(p.name + ".npz")
    return write_atomic(p, lambda fh: np.savez(fh, **arrays))


def save_figure(fig, path, **kwargs) -> Path:
    """``fig.savefig`` atomically; a name without an extension gets ``.png`` (as matplotlib
    does). Returns the file name written."""
    p = Path(path)
    fmt = p.suffix[1:].lower()
    if not fmt:
        p, fmt = p.with_name(p.name + ".png"), "png"
    return write_atomic(p, lambda fh: fig.savefig(fh, format=fmt, **kwargs))
