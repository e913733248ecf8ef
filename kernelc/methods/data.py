"""Loading data sets from .npz archives and shaping images for the kernels; writing the
commands' output files.

One data path for every command (kernel, fit, predict, verify, augment) and for Python callers:
:func:`read_split` picks the arrays (errors say ``--x KEY`` to command-line users, ``x_key=`` to
Python callers), :func:`prepare_images` checks the dtype, crops, scales uint8 to [0, 1], pools
(:class:`ImagePreprocessing`, in that order) and fits the images to the spec's input, or says
which ``--crop``/``--pool`` would make them fit.

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
from dataclasses import dataclass
from typing import IO, Callable, Dict, Iterable, NamedTuple, Optional, Tuple, Union

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


def read_npz(path, max_bytes: Optional[int] = None) -> Dict[str, np.ndarray]:
    """All arrays of an .npz archive, checked as every command reads data (headers surveyed
    before loading, no pickles, a size budget); pass the result to :func:`read_split` as
    ``arrays=`` to pick several arrays from one reading."""
    return _read_npz(path, max_bytes)


def _check_finite(path, key: str, arr: np.ndarray) -> None:
    if np.issubdtype(arr.dtype, np.inexact):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(f"array '{key}' in {path} contains {int(bad.sum())} NaN/inf value(s)")


#: How a Python caller and a command-line user choose an array: the words the loader's errors
#: use to say "choose another key" (one reader serves both, each sees its own name).
PYTHON_KEYS = {"x": "x_key=", "y": "y_key="}
CLI_KEYS = {"x": "--x KEY", "y": "--y KEY", "x2": "--x2 KEY"}


def _pick(path, arrays: Dict[str, np.ndarray], key: str, choose: str) -> np.ndarray:
    if key not in arrays:
        hint = did_you_mean(key, arrays)
        raise InputError(f"no array '{key}' in {path}; available: {', '.join(sorted(arrays)) or '(none)'}"
                         + (f"; {hint}" if hint else f"; pass {choose} to choose one"))
    _check_finite(path, key, arrays[key])
    return arrays[key]


def load_array(path, key: str = "x") -> np.ndarray:
    """One array of an .npz archive, read as :func:`load_arrays` reads (headers surveyed before
    loading, no pickles, finite values); :class:`InputError` names the missing key."""
    return _pick(path, _read_npz(path), key, "key=")


def read_split(path, role: Optional[str] = None, x_key: Optional[str] = None,
               y_key: Optional[str] = None, *, need_y: bool = False,
               choose: Dict[str, str] = PYTHON_KEYS, arrays: Optional[Dict[str, np.ndarray]] = None
               ) -> Tuple[np.ndarray, Optional[np.ndarray], str, Optional[str]]:
    """``(x, y, x_key_used, y_key_used)`` from an .npz archive: the one reader of every command
    (kernel, fit, predict, verify, augment) and of :func:`load_arrays`.

    Keys: ``x_key``/``y_key`` when given; else ``x``/``y``, or (with ``role`` 'train' or 'test')
    ``x_<role>``/``y_<role>`` when the archive has no ``x``. Without ``y_key`` the targets are
    optional unless ``need_y``. ``choose`` names how the caller picks a key (``x_key=`` for Python,
    ``--x KEY`` for the command line) in the errors, which also name the file, the keys looked
    for and the keys available. ``arrays``: the archive already read (to read it once for x, x2).
    """
    arrays = _read_npz(path) if arrays is None else arrays
    avail = ", ".join(sorted(arrays)) or "(none)"
    if x_key is None and role:
        candidates = [k for k in ("x", f"x_{role}") if k in arrays]
        if not candidates:
            raise InputError(f"no {role} inputs in {path}: looked for array 'x' or 'x_{role}'; "
                             f"available: {avail}; pass {choose['x']} to choose one")
        x_key = candidates[0]
    x_key = x_key or "x"
    x = _pick(path, arrays, x_key, choose["x"])  # also rejects NaN/inf
    if y_key is None:
        pair = {"x": "y", f"x_{role}": f"y_{role}"}.get(x_key) if role else "y"
        # the paired key, else (inputs under another key) a target array of as many samples
        candidates = [pair] if pair in arrays else [
            k for k in ("y", f"y_{role}" if role else None) if k in arrays
            and arrays[k].ndim and x.ndim and arrays[k].shape[0] == x.shape[0]]
        y_key = candidates[0] if candidates else None
        if y_key is None and need_y:
            raise InputError(f"no {role + ' ' if role else ''}targets in {path}: looked for array "
                             f"'{pair or 'y'}'; available: {avail}; pass {choose['y']} to choose one")
    if y_key is None:
        return x, None, x_key, None
    y = _pick(path, arrays, y_key, choose["y"])
    if y.ndim == 0 or x.ndim == 0 or y.shape[0] != x.shape[0]:
        raise InputError(f"{path}: '{x_key}' has {x.shape[0] if x.ndim else 'no sample axis'} "
                         f"samples but '{y_key}' has {y.shape[0] if y.ndim else 'no sample axis'}")
    return x, y, x_key, y_key


def load_arrays(path, x_key: Optional[str] = None, y_key: Optional[str] = None
                ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``(x, y)`` from an .npz archive.

    ``x_key`` defaults to ``'x'``; ``y_key`` defaults to ``'y'`` when the archive has it, else
    ``y`` is ``None`` (unlabelled data). A missing file or key, a non-.npz file, pickled content,
    or NaN/inf in a floating array raises :class:`InputError`. (:func:`read_split`, which every
    command uses, with the Python parameter names in its errors.)
    """
    x, y, _, _ = read_split(path, None, x_key, y_key)
    return x, y


# =========================================================================== image preprocessing
def _box_text(shape) -> str:
    return "×".join(map(str, shape))


def _parse_int(text: str, flag: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{flag}: {what} must be whole numbers, got {text!r}") from None


@dataclass(frozen=True)
class ImagePreprocessing:
    """Crop, then average-pool, the spatial axes of an image stack (N, *box[, C]).

    ``crop``: one entry per spatial axis, or one for all of them; an entry is a size ``s``
    (centre crop: pixels ``a:a+s`` with ``a = ⌊(L − s)/2⌋`` of an axis of length ``L``) or a
    ``(start, stop)`` pair (pixels ``start:stop``). ``pool``: an integer factor ``K``; each
    output pixel is the mean of a ``K × … × K`` block,

        x'[i, j] = (1/K²) Σ_{a,b < K} x[K·i + a, K·j + b]      (2-D; likewise in 3-D),

    so every axis must be divisible by ``K`` after the crop. The order is fixed: crop, then pool
    (28×28 MNIST: ``crop=21, pool=3`` gives the centre 21×21 as 7×7). ``flags`` are the names
    used in errors and hints: ``("crop=", "pool=")`` for Python, ``("--crop", "--pool")`` on the
    command line.
    """

    crop: Tuple[Union[int, Tuple[int, int]], ...] = ()
    pool: int = 1
    flags: Tuple[str, str] = ("crop=", "pool=")

    @classmethod
    def parse(cls, crop=None, pool=None, flags: Tuple[str, str] = ("crop=", "pool=")
              ) -> "ImagePreprocessing":
        """From the options as written: ``crop`` ``"21"``, ``"21,24"`` (per axis), ``"3:24,3:24"``
        (explicit pixel ranges), an int or a tuple of those entries; ``pool`` an int ≥ 1."""
        crop_flag, pool_flag = flags
        entries: list = []
        if crop is not None:
            parts = [p.strip() for p in crop.split(",")] if isinstance(crop, str) else \
                list(crop) if isinstance(crop, (tuple, list)) else [crop]
            if not parts or any(p == "" for p in parts):
                raise InputError(f"{crop_flag}: give a size (21), sizes per axis (21,24) or pixel "
                                 f"ranges (3:24,3:24); got {crop!r}")
            for part in parts:
                if isinstance(part, str) and ":" in part:
                    start_text, _, stop_text = part.partition(":")
                    part = (_parse_int(start_text, crop_flag, "pixel ranges"),
                            _parse_int(stop_text, crop_flag, "pixel ranges"))
                elif isinstance(part, str):
                    part = _parse_int(part, crop_flag, "crop sizes")
                if isinstance(part, (tuple, list)) and len(part) == 2 and \
                        all(isinstance(v, (int, np.integer)) for v in part):
                    start, stop = int(part[0]), int(part[1])
                    if start < 0 or stop <= start:
                        raise InputError(f"{crop_flag}: the pixel range {start}:{stop} is empty or "
                                         "negative; write start:stop with 0 ≤ start < stop")
                    entries.append((start, stop))
                elif isinstance(part, (int, np.integer)) and not isinstance(part, bool):
                    if part < 1:
                        raise InputError(f"{crop_flag}: a crop size must be ≥ 1, got {part}")
                    entries.append(int(part))
                else:
                    raise InputError(f"{crop_flag}: cannot read {part!r} as a size or a "
                                     "(start, stop) range")
        if pool is None:
            pool = 1
        if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)) or pool < 1:
            raise InputError(f"{pool_flag}: the pooling factor must be a whole number ≥ 1, "
                             f"got {pool!r}")
        return cls(tuple(entries), int(pool), tuple(flags))

    @property
    def active(self) -> bool:
        return bool(self.crop) or self.pool > 1

    def options(self, crop=None, pool: int = 1) -> str:
        """``crop``/``pool`` written as the user would pass them (``--crop 21 --pool 3``)."""
        crop_flag, pool_flag = self.flags
        words = []
        if crop is not None:
            text = crop if isinstance(crop, str) else str(crop)
            words.append(f"{crop_flag}{text}" if crop_flag.endswith("=") else f"{crop_flag} {text}")
        if pool > 1:
            words.append(f"{pool_flag}{pool}" if pool_flag.endswith("=") else f"{pool_flag} {pool}")
        return (", " if self.flags[0].endswith("=") else " ").join(words)

    def _crop_ranges(self, box: Tuple[int, ...], source: str) -> Tuple[Tuple[int, int], ...]:
        crop_flag = self.flags[0]
        if len(self.crop) not in (1, len(box)):
            raise InputError(f"{crop_flag}: {len(self.crop)} entries for {source} with "
                             f"{len(box)} spatial axes ({_box_text(box)}); give one entry, or one "
                             "per axis")
        entries = self.crop * len(box) if len(self.crop) == 1 else self.crop
        ranges = []
        for length, entry in zip(box, entries):
            if isinstance(entry, tuple):
                start, stop = entry
                if stop > length:
                    raise InputError(f"{crop_flag}: the range {start}:{stop} reaches past the "
                                     f"{length} pixels of {source} ({_box_text(box)})")
            else:
                if entry > length:
                    raise InputError(f"{crop_flag} {entry}: {source} are {_box_text(box)}, "
                                     f"smaller than {entry}")
                start = (length - entry) // 2
                stop = start + entry
            ranges.append((start, stop))
        return tuple(ranges)

    def cropped(self, x: np.ndarray, spatial_axes: int, source: str = "inputs") -> np.ndarray:
        """``x`` (N, *box, ...) with its first ``spatial_axes`` axes after N cropped: a view, in
        the stored dtype."""
        box = tuple(x.shape[1:1 + spatial_axes])
        if len(box) < spatial_axes:
            raise InputError(f"{source} have shape {tuple(x.shape[1:])} per sample: fewer than the "
                             f"{spatial_axes} spatial axes to crop or pool")
        if not self.crop:
            return x
        ranges = self._crop_ranges(box, source)
        return x[(slice(None),) + tuple(slice(a, b) for a, b in ranges)]

    def pooled(self, x: np.ndarray, spatial_axes: int, source: str = "inputs") -> np.ndarray:
        """``x`` (N, *box, ...) with its first ``spatial_axes`` axes after N average-pooled by
        ``pool`` (float64 means); :class:`InputError` when an axis is not divisible."""
        if self.pool == 1:
            return x
        k = self.pool
        box = tuple(x.shape[1:1 + spatial_axes])
        if len(box) < spatial_axes:
            raise InputError(f"{source} have shape {tuple(x.shape[1:])} per sample: fewer than the "
                             f"{spatial_axes} spatial axes to pool")
        if any(length % k for length in box):
            after = f" after {self.options(self._crop_text())}" if self.crop else ""
            if any(length < k for length in box):  # the hint below was "--crop 0 --pool K"
                raise InputError(f"{self.options(None, k)}: {source} are {_box_text(box)}{after}, "
                                 f"smaller than the pooling factor {k}")
            fits = tuple(length - length % k for length in box)
            crop_hint = ",".join(map(str, fits)) if len(set(fits)) > 1 else str(fits[0])
            raise InputError(f"{self.options(None, k)}: {source} are {_box_text(box)}{after}, "
                             f"not divisible by {k}; crop to a multiple of {k} first, e.g. "
                             f"{self.options(crop_hint, k)}")
        split = sum(((length // k, k) for length in box), ())
        blocks = np.asarray(x, np.float64).reshape((x.shape[0],) + split
                                                   + tuple(x.shape[1 + spatial_axes:]))
        return blocks.mean(axis=tuple(2 + 2 * i for i in range(spatial_axes)))

    def apply(self, x: np.ndarray, spatial_axes: int, source: str = "inputs") -> np.ndarray:
        """Crop, then pool (:meth:`cropped`, :meth:`pooled`), without the dtype scaling of
        :func:`prepare_images`."""
        return self.pooled(self.cropped(x, spatial_axes, source), spatial_axes, source)

    def _crop_text(self) -> str:
        return ",".join(f"{e[0]}:{e[1]}" if isinstance(e, tuple) else str(e) for e in self.crop)

    def describe(self) -> str:
        """e.g. ``centre crop 21, then 3×3 average pooling`` (for the commands' output)."""
        parts = []
        if self.crop:
            parts.append(f"crop {self._crop_text()}")
        if self.pool > 1:
            parts.append(f"{self.pool}×{self.pool} average pooling")
        return ", then ".join(parts) or "none"


NO_PREPROCESSING = ImagePreprocessing()


def fitting_options(data_box: Tuple[int, ...], spec_box: Tuple[int, ...],
                    preprocessing: ImagePreprocessing = NO_PREPROCESSING) -> list:
    """Crop/pool options that turn images of ``data_box`` into ``spec_box``, as the user writes
    them (``["--pool 4", "--crop 21 --pool 3"]`` for 28×28 data and a 7×7 spec): pooling alone
    when every axis is the same multiple ``K`` of the spec's, and a centre crop to the largest
    multiple ``K'`` × the spec's size smaller than the images with that pooling (a crop alone
    for ``K' = 1``)."""
    if len(data_box) != len(spec_box) or any(d < s for d, s in zip(data_box, spec_box)):
        return []
    out = []
    ratios = {d // s for d, s in zip(data_box, spec_box)}
    exact = all(d % s == 0 for d, s in zip(data_box, spec_box)) and len(ratios) == 1
    k = min(d // s for d, s in zip(data_box, spec_box))
    if exact and ratios != {1}:
        out.append(preprocessing.options(None, k))
        k -= 1  # and a real crop with the next smaller factor
    sizes = tuple(s * k for s in spec_box)
    if sizes != tuple(data_box):
        crop = str(sizes[0]) if len(set(sizes)) == 1 else ",".join(map(str, sizes))
        out.append(preprocessing.options(crop, k))
    return out


def prepare_images(x, spec_input, source: str = "inputs",
                   preprocessing: ImagePreprocessing = NO_PREPROCESSING,
                   spec_name: str = "") -> np.ndarray:
    """``x`` as float64 (N, *box, C) for a spec's input declaration: the one input path of every
    command and of :func:`kernelc.methods.tasks.prepare_inputs`.

    In this order: the dtype is checked (real numbers); ``preprocessing`` crops (pixels as
    stored), uint8 pixels become ``x/255`` ∈ [0, 1] (any other dtype is kept as it is: its range
    is unknown), then pools; single-channel (N, *box) stacks get a channel axis. A shape that
    does not fit the spec raises :class:`InputError` saying so, with the crop/pool options that
    would make it fit, or the channel axis to move.
    """
    arr = np.asarray(x)
    box, channels = tuple(spec_input.shape), spec_input.channels
    want = box + (channels,)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise InputError(f"{source} must be real numbers, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise InputError(f"{source} holds no samples (shape {arr.shape})")
    raw_per_sample = tuple(arr.shape[1:])
    if preprocessing.active:
        if getattr(spec_input, "domain", "box") != "box":
            raise InputError(f"{preprocessing.flags[0].rstrip('=')}/{preprocessing.flags[1].rstrip('=')}"
                             f" crop and pool images on a box; spec '{spec_name}' takes signals on "
                             f"the {spec_input.domain}")
        arr = preprocessing.cropped(arr, len(box), source)  # a view: crop before converting
    arr = arr.astype(np.float64) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    arr = preprocessing.pooled(arr, len(box), source)
    per = tuple(arr.shape[1:])
    if channels == 1 and per == box:
        arr = arr[..., None]
    elif per != want:
        expect = f"{_box_text(box)} with {channels} channel(s), i.e. (N, {', '.join(map(str, want))})"
        done = f" (after {preprocessing.describe()})" if preprocessing.active else ""
        hint = ""
        if per == (channels,) + box:
            hint = "; the channel axis looks first: move it last (np.moveaxis(x, 1, -1))"
        elif len(per) >= len(box) and per[:len(box)] != box:
            data_box = raw_per_sample[:len(box)]
            options = fitting_options(data_box, box, preprocessing)
            # Python callers (prepare_images, the scikit-learn estimators) are pointed at the
            # class that takes these parameters; command-line users at the flags
            where = "" if preprocessing.flags[0].startswith("--") else \
                " (kernelc.methods.data.ImagePreprocessing)"
            if preprocessing.active and tuple(data_box) == box:
                # the images fit as stored: the crop/pool given is what makes them not fit
                names = "/".join(flag.rstrip("=") for flag in preprocessing.flags)
                fix = f"leave out {names} (the {_box_text(data_box)} images fit as stored), "
            else:
                fix = (f"pass {' or '.join(options)}{where} to crop/pool the "
                       f"{_box_text(data_box)} images to {_box_text(box)}, " if options else "")
            hint = (f"; the images are {_box_text(per[:len(box)])}, the spec's input is "
                    f"{_box_text(box)}: {fix}or use a spec with 'input "
                    f"{' x '.join(map(str, per[:len(box)]))} channels "
                    f"{per[len(box)] if len(per) > len(box) else 1}'")
        raise InputError(f"{source} have shape {per} per sample{done}, but spec '{spec_name}' "
                         f"takes {expect}{hint}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{source} contain {int(np.sum(~np.isfinite(arr)))} NaN/inf value(s)")
    return arr


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
    parts = {k: _pick(path, arrays, k, "path=") for k in Dataset._fields}
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
