"""Find, verify, decode, cache and split the Fashion-MNIST dataset.

Where the data comes from
    :func:`load_raw` looks for a folder holding all four IDX files named in
    :data:`FILES`, in this order (see :func:`candidate_dirs`):

    1. the ``data_dir`` argument or, if it is not given, ``$NNEXP_DATA_DIR``;
    2. Keras' own cache, ``$KERAS_HOME/datasets/fashion-mnist`` (by default
       ``~/.keras/datasets/fashion-mnist``), where ``keras.datasets`` puts it;
    3. :data:`SYSTEM_DIR`, installed by ``apt-get install dataset-fashion-mnist``;
    4. last, if ``download`` is true, a download from Keras' usual origin into
       Keras' cache (the only step that imports Keras, and only then).

    A folder counts only when it holds all four files.  A folder the user named
    (argument or environment variable) that lacks them is an error rather than
    silently skipped, because quietly training on some other copy would hide a
    typo.  The first complete folder is used; a corrupt file in it is an error
    too, not a reason to move on, so a damaged copy never goes unnoticed.

How files are verified
    Every file is decompressed and its IDX header checked (magic number 2051
    for images and 2049 for labels, 60000 or 10000 items of 28x28 pixels, and
    a byte length matching the header).  Then the SHA-256 of the *decompressed*
    bytes is compared with :data:`SHA256`, computed from the Debian package.
    The ``.gz`` bytes are deliberately not hashed: repackagers recompress the
    files, so the archives differ between sources while the content does not.

The decoded cache
    Gunzipping and hashing takes about half a second, paid again by every run
    of a sweep, so the first verified decode is saved as one uncompressed
    ``.npz`` file, ``fashion-mnist-decoded-v1.npz``, in :func:`cache_dir`
    (beside Keras' cache, by default ``~/.keras/datasets/fashion-mnist-nnexp``).
    Loading it takes a few tens of milliseconds.

    The cache is keyed on the source it was decoded from.  A JSON key is stored
    inside the ``.npz`` itself (so array and key can never be torn apart) and
    holds the absolute source folder and, for each of the four ``.gz`` files
    (following symlinks), its path, size, inode, modification time and status
    change time (both in ns), plus the reference digests.  The cache is used
    only if that key equals the one computed now for the folder the search
    picked.  Choosing another folder, or replacing, editing or touching a file
    in it, therefore forces a full decode and verification of that source:
    even an edit whose mtime is restored afterwards changes the ctime, which
    only the kernel sets.  The digests in the key invalidate the cache should
    the reference data ever change.  Whatever is served from the cache was
    verified against :data:`SHA256` when it was written.

    The file is written to a temporary name in the same folder and moved into
    place with :func:`os.replace`, so concurrent runs and crashes never leave a
    half-written cache.  A cache that fails to load (zip CRC errors included:
    NumPy's reader checks each member's CRC-32) or holds wrong shapes or dtypes
    is ignored and rebuilt.  If the cache folder is not writable, nothing is
    cached and nothing is reported: the cache only saves time.

Splits and scaling
    :func:`prepare_splits` follows the reference experiments: the first
    ``validation_size`` training images are the validation set, the rest the
    training set (optionally capped to its first ``train_size`` images), and
    the test set is kept apart for the final score.  See its docstring for the
    two scalings.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import operator
import os
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnexp.errors import DataError

__all__ = [
    "FILES",
    "ORIGIN",
    "SCALINGS",
    "SHA256",
    "SYSTEM_DIR",
    "RawData",
    "Splits",
    "cache_dir",
    "candidate_dirs",
    "keras_cache_dir",
    "load_raw",
    "load_splits",
    "prepare_splits",
]

FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
"""Role of each file mapped to its name, the same in every source."""

SHA256: dict[str, str] = {
    "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
"""SHA-256 of each file's decompressed IDX bytes, from Debian's
``dataset-fashion-mnist`` package."""

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install dataset-fashion-mnist`` puts the files."""

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
"""Base URL ``keras.datasets.fashion_mnist`` downloads the files from."""

SCALINGS = ("unit", "standardize")
"""Accepted values of the ``scaling`` argument."""

# Expected IDX magic number and shape of each file.
_LAYOUT: dict[str, tuple[int, tuple[int, ...]]] = {
    "train_images": (2051, (60000, 28, 28)),
    "train_labels": (2049, (60000,)),
    "test_images": (2051, (10000, 28, 28)),
    "test_labels": (2049, (10000,)),
}

_CACHE_NAME = "fashion-mnist-decoded-v1.npz"
_CACHE_FORMAT = 1

# Labels of the search steps; the first two name a folder the user chose.
_ARG_LABEL = "data_dir"
_ENV_LABEL = "NNEXP_DATA_DIR"
_KERAS_LABEL = "Keras cache"
_SYSTEM_LABEL = "system package"
_EXPLICIT_LABELS = frozenset({_ARG_LABEL, _ENV_LABEL})

_HINT = (
    "Get the data with `apt-get install dataset-fashion-mnist`, point "
    "NNEXP_DATA_DIR (or --data-dir) at a folder holding the four files, "
    "or allow the download."
)
# After a failed download "allow the download" is no help; say the rest.
_HINT_OFFLINE = (
    "Get the data with `apt-get install dataset-fashion-mnist`, or point "
    "NNEXP_DATA_DIR (or --data-dir) at a folder holding the four files."
)

# Rows per block when computing per-pixel statistics: a float64 block of this
# size is 25 MB, instead of 345 MB for all 55000 training images at once.
_STATS_BLOCK = 4096


@dataclass(frozen=True, eq=False)
class RawData:
    """The verified dataset as stored in the IDX files.

    The arrays are read-only: one copy is shared by every caller and a stray
    in-place edit would silently change later experiments.

    Attributes:
        x_train: Training images, ``(60000, 28, 28)`` ``uint8``.
        y_train: Training labels 0-9, ``(60000,)`` ``uint8``.
        x_test: Test images, ``(10000, 28, 28)`` ``uint8``.
        y_test: Test labels 0-9, ``(10000,)`` ``uint8``.
        source: The folder the files were found in.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


@dataclass(frozen=True, eq=False)
class Splits:
    """Scaled train, validation and test sets, ready for ``model.fit``.

    Attributes:
        x_train: Training images, ``(n, 28, 28)`` ``float32``.
        y_train: Training labels, ``(n,)`` ``int32``.
        x_val: Validation images, ``(validation_size, 28, 28)`` ``float32``.
        y_val: Validation labels, ``(validation_size,)`` ``int32``.
        x_test: Test images, ``(10000, 28, 28)`` ``float32``.
        y_test: Test labels, ``(10000,)`` ``int32``.
        scaling: The scaling applied, one of :data:`SCALINGS`.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    scaling: str


# --------------------------------------------------------------------------
# Locations


def _keras_home() -> Path:
    """Return Keras' base folder, decided the way Keras decides it."""
    env = os.environ.get("KERAS_HOME")
    if env:
        return Path(env).expanduser()
    base = Path.home()
    # Keras falls back to /tmp when the home folder is read-only; follow it so
    # we look where Keras would have put a download.
    if not os.access(base, os.W_OK):
        base = Path("/tmp")
    return base / ".keras"


def keras_cache_dir() -> Path:
    """Return the folder ``keras.datasets.fashion_mnist`` downloads into.

    Returns:
        ``$KERAS_HOME/datasets/fashion-mnist``, by default
        ``~/.keras/datasets/fashion-mnist``.
    """
    return _keras_home() / "datasets" / "fashion-mnist"


def cache_dir() -> Path:
    """Return the folder holding nnexp's decoded cache.

    Returns:
        ``fashion-mnist-nnexp`` beside :func:`keras_cache_dir`.
    """
    return _keras_home() / "datasets" / "fashion-mnist-nnexp"


def candidate_dirs(data_dir: Path | None = None) -> list[tuple[str, Path]]:
    """List the folders to search, in order, each with a label for messages.

    Args:
        data_dir: A folder the caller insists on; it replaces
            ``$NNEXP_DATA_DIR``.

    Returns:
        ``(label, folder)`` pairs: the ``data_dir`` argument or else
        ``$NNEXP_DATA_DIR`` (when set), then Keras' cache, then
        :data:`SYSTEM_DIR`.  Folders are absolute; none needs to exist.
    """
    found: list[tuple[str, Path]] = []
    env = os.environ.get("NNEXP_DATA_DIR")
    if data_dir is not None:
        found.append((_ARG_LABEL, Path(data_dir)))
    elif env:
        found.append((_ENV_LABEL, Path(env)))
    found.append((_KERAS_LABEL, keras_cache_dir()))
    found.append((_SYSTEM_LABEL, SYSTEM_DIR))
    return [(label, Path(os.path.abspath(p.expanduser()))) for label, p in found]


# --------------------------------------------------------------------------
# Error messages


def _describe(searched: list[tuple[str, Path, str]]) -> str:
    """Format the folders looked at, one per line, for an error message."""
    lines = [f"  {label} {folder} ({note})" for label, folder, note in searched]
    return "Looked in:\n" + "\n".join(lines)


def _first_line(exc: BaseException) -> str:
    """Shorten an exception from Keras or TensorFlow to one line for a message."""
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _error(
    headline: str, searched: list[tuple[str, Path, str]], hint: str = _HINT
) -> DataError:
    """Build a DataError: what is wrong, where we looked, how to fix it."""
    return DataError(f"{headline}\n{_describe(searched)}\n{hint}")


class _BadFile(Exception):
    """A data file is unreadable or corrupt; turned into a DataError."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


# --------------------------------------------------------------------------
# Finding the files


def _missing(folder: Path) -> str | None:
    """Say what a folder lacks, or return None if it holds all four files."""
    if not folder.is_dir():
        return "no such folder"
    absent = [name for name in FILES.values() if not (folder / name).is_file()]
    if not absent:
        return None
    if len(absent) == len(FILES):
        return "no Fashion-MNIST files"
    return "missing " + ", ".join(absent)


def _download(searched: list[tuple[str, Path, str]]) -> dict[str, Path]:
    """Download the files Keras' cache lacks, the way ``keras.datasets`` does.

    Args:
        searched: The folders looked at so far, for error messages.

    Returns:
        The path of each file, by role.

    Raises:
        DataError: Keras cannot be imported or a download failed.
    """
    try:
        # Imported here only: loading Keras pulls in TensorFlow, which takes
        # seconds and is not needed when the files are already on disk.
        import keras
    except Exception as exc:  # a broken TF install raises more than ImportError
        raise _error(
            "Downloading Fashion-MNIST needs Keras, which failed to import: "
            + _first_line(exc),
            searched,
            _HINT_OFFLINE,
        ) from None
    home = _keras_home()
    # get_file silently switches to /tmp/.keras when its folder does not exist
    # yet; create it so the files land where the next search looks.
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    paths: dict[str, Path] = {}
    for role, name in FILES.items():
        try:
            got = keras.utils.get_file(
                name,
                origin=ORIGIN + name,
                cache_dir=str(home),
                cache_subdir="datasets/fashion-mnist",
            )
        except Exception as exc:  # Keras wraps network errors in bare Exception
            raise _error(
                f"Downloading {name} from {ORIGIN} failed: {_first_line(exc)}",
                searched,
                _HINT_OFFLINE,
            ) from None
        paths[role] = Path(got)
    return paths


def _locate(
    data_dir: Path | None, download: bool
) -> tuple[dict[str, Path], list[tuple[str, Path, str]]]:
    """Pick the first folder holding all four files.

    Args:
        data_dir: See :func:`load_raw`.
        download: See :func:`load_raw`.

    Returns:
        The path of each file by role, and the folders looked at (label,
        folder, note), the last one being where the files are.

    Raises:
        DataError: A folder the user named lacks files, or no folder holds
            them and downloading is off or fails.
    """
    searched: list[tuple[str, Path, str]] = []
    for label, folder in candidate_dirs(data_dir):
        problem = _missing(folder)
        if problem is None:
            searched.append((label, folder, "has all four files"))
            return {role: folder / name for role, name in FILES.items()}, searched
        searched.append((label, folder, problem))
        if label in _EXPLICIT_LABELS:
            raise _error(f"Fashion-MNIST not found in {folder}: {problem}.", searched)
    if not download:
        raise _error(
            "Fashion-MNIST not found, and downloading it is turned off.", searched
        )
    paths = _download(searched)
    searched.append(("download to", paths["train_images"].parent, "downloaded"))
    return paths, searched


# --------------------------------------------------------------------------
# Decoding and verifying


def _read_idx(path: Path, role: str) -> np.ndarray:
    """Decompress, check and decode one IDX file.

    Args:
        path: The ``.gz`` file.
        role: Its key in :data:`FILES`.

    Returns:
        The decoded read-only ``uint8`` array.

    Raises:
        _BadFile: The file is unreadable, not gzip, has a wrong header or
            length, or its content fails the checksum.
    """
    try:
        packed = path.read_bytes()
    except OSError as exc:
        raise _BadFile(path, f"cannot be read ({exc.strerror or exc})") from None
    magic, shape = _LAYOUT[role]
    header_len = 4 + 4 * len(shape)
    expected_len = header_len + int(np.prod(shape))
    try:
        # One byte more than a valid file holds is enough to tell it is too
        # long: a gzip bomb is not inflated into the memory.
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
            data = stream.read(expected_len + 1)
    except EOFError:
        raise _BadFile(path, "the gzip data is truncated") from None
    except (OSError, zlib.error) as exc:
        raise _BadFile(path, f"not valid gzip data ({exc})") from None

    if len(data) < header_len:
        raise _BadFile(path, f"too short for an IDX header ({len(data)} bytes)")
    fields = np.frombuffer(data, dtype=">u4", count=1 + len(shape))
    if int(fields[0]) != magic:
        raise _BadFile(
            path, f"bad IDX magic number {int(fields[0])} (expected {magic})"
        )
    dims = tuple(int(d) for d in fields[1:])
    if dims != shape:
        raise _BadFile(path, f"IDX header says shape {dims}, expected {shape}")
    if len(data) > expected_len:
        raise _BadFile(
            path, f"holds more than the {expected_len} bytes its IDX header implies"
        )
    if len(data) < expected_len:
        raise _BadFile(
            path, f"holds {len(data)} bytes, the IDX header implies {expected_len}"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[role]:
        raise _BadFile(
            path,
            f"checksum mismatch (SHA-256 of the decompressed data is "
            f"{digest[:12]}..., expected {SHA256[role][:12]}...)",
        )
    # frombuffer over immutable bytes: a zero-copy, read-only view.
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)


# Smallest files first: a damaged label file is reported at once instead of
# after gunzipping the 26 MB of training images.
_DECODE_ORDER = ("train_labels", "test_labels", "test_images", "train_images")


def _decode(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """Decode and verify all four files, returning arrays by role."""
    return {role: _read_idx(paths[role], role) for role in _DECODE_ORDER}


# --------------------------------------------------------------------------
# The decoded cache


def _cache_key(source: Path, paths: dict[str, Path]) -> str:
    """Describe the source so a cache from another source is never used.

    Args:
        source: The folder the data is read from.
        paths: Each file's path, by role.

    Returns:
        A canonical JSON string; equal strings mean the same source files.

    Raises:
        OSError: A file vanished since it was found.
    """
    files = {}
    for role, path in paths.items():
        st = path.stat()
        # ctime and inode catch a file replaced or edited with its mtime
        # restored (cp -p, rsync -t); a false miss only costs one decode.
        files[role] = [
            str(path),
            st.st_size,
            st.st_ino,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ]
    key = {
        "format": _CACHE_FORMAT,
        "source": str(source),
        "files": files,
        "sha256": SHA256,
    }
    return json.dumps(key, sort_keys=True)


_CACHE_ARRAYS = {
    "x_train": (np.uint8, _LAYOUT["train_images"][1]),
    "y_train": (np.uint8, _LAYOUT["train_labels"][1]),
    "x_test": (np.uint8, _LAYOUT["test_images"][1]),
    "y_test": (np.uint8, _LAYOUT["test_labels"][1]),
}


def _load_cache(key: str) -> dict[str, np.ndarray] | None:
    """Return the cached arrays if the cache exists, is intact and matches key."""
    path = cache_dir() / _CACHE_NAME
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"][()]) != key:
                return None
            arrays = {name: npz[name] for name in _CACHE_ARRAYS}
    # Any failure means a damaged or foreign file; the cache is only a
    # shortcut, so the answer is always to decode again.
    except Exception:
        return None
    for name, (dtype, shape) in _CACHE_ARRAYS.items():
        if arrays[name].dtype != dtype or arrays[name].shape != shape:
            return None
        arrays[name].flags.writeable = False
    return arrays


def _save_cache(key: str, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache atomically; give up silently if that is impossible."""
    folder = cache_dir()
    tmp_name: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A unique name in the same folder makes os.replace atomic; "x" mode
        # (unlike mkstemp's 0600) keeps the umask's permissions, so a shared
        # KERAS_HOME stays readable by the other users.
        tmp_name = str(folder / f".{_CACHE_NAME}.{os.getpid()}.{uuid.uuid4().hex}")
        with open(tmp_name, "xb") as f:
            # Uncompressed on purpose: loading must be fast, not small.
            np.savez(f, key=np.array(key), **arrays)
        os.replace(tmp_name, folder / _CACHE_NAME)
        tmp_name = None
    except OSError:
        pass
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


# --------------------------------------------------------------------------
# Public loading API


def load_raw(data_dir: Path | None = None, download: bool = True) -> RawData:
    """Find, verify and decode Fashion-MNIST, using the decoded cache if valid.

    Args:
        data_dir: A folder holding the four ``.gz`` files; if given, it must
            hold them (no other folder is tried).  ``None`` searches the usual
            places (see the module docstring).
        download: Whether to download the files into Keras' cache when no
            folder holds them.

    Returns:
        The raw ``uint8`` arrays and the folder they came from.

    Raises:
        DataError: The files are missing, unreadable or corrupt, or the
            download failed.  The message names the file and the problem, the
            folders searched, and how to get the data.
    """
    paths, searched = _locate(data_dir, download)
    source = paths["train_images"].parent
    try:
        key = _cache_key(source, paths)
    except OSError as exc:
        raise _error(f"Cannot read the Fashion-MNIST files: {exc}", searched) from None

    arrays = _load_cache(key)
    if arrays is None:
        try:
            decoded = _decode(paths)
        except _BadFile as bad:
            raise _error(
                f"Fashion-MNIST file {bad.path.name} in {bad.path.parent} is "
                f"corrupt: {bad.problem}.",
                searched,
            ) from None
        arrays = {
            "x_train": decoded["train_images"],
            "y_train": decoded["train_labels"],
            "x_test": decoded["test_images"],
            "y_test": decoded["test_labels"],
        }
        _save_cache(key, arrays)
    return RawData(source=str(source), **arrays)


def _check_sizes(n: int, validation_size: int, train_size: int | None) -> None:
    """Reject split sizes outside the valid ranges (a programmer guard)."""
    try:
        validation_size = operator.index(validation_size)
        if train_size is not None:
            train_size = operator.index(train_size)
    except TypeError:
        raise ValueError(
            f"split sizes must be integers, got validation_size="
            f"{validation_size!r}, train_size={train_size!r}"
        ) from None
    if not 1 <= validation_size <= n - 1:
        raise ValueError(
            f"validation_size must be in [1, {n - 1}], got {validation_size}"
        )
    if train_size is not None and not 1 <= train_size <= n - validation_size:
        raise ValueError(
            f"train_size must be None or in [1, {n - validation_size}] when "
            f"validation_size is {validation_size}, got {train_size}"
        )


def _pixel_mean_std(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and standard deviation of ``uint8`` images.

    Sums of pixel values and of their squares are integers well below 2**53,
    so accumulating them in float64 is exact and ``E[x^2] - E[x]^2`` does not
    suffer cancellation; a constant pixel gets exactly zero variance.

    Args:
        images: ``(n, 28, 28)`` ``uint8`` images, ``n >= 1``.

    Returns:
        Mean and standard deviation, each ``(28, 28)`` float64.
    """
    flat = images.reshape(len(images), -1)
    # A dtype'd reduction casts in small buffers, not into a full copy.
    total = flat.sum(axis=0, dtype=np.float64)
    total_sq = np.zeros(flat.shape[1], dtype=np.float64)
    for start in range(0, len(flat), _STATS_BLOCK):
        block = flat[start : start + _STATS_BLOCK].astype(np.float64)
        total_sq += np.einsum("ij,ij->j", block, block)
    n = len(flat)
    mean = total / n
    var = np.maximum(total_sq / n - mean * mean, 0.0)
    shape = images.shape[1:]
    return mean.reshape(shape), np.sqrt(var).reshape(shape)


def prepare_splits(
    raw: RawData,
    validation_size: int = 5000,
    train_size: int | None = None,
    scaling: str = "unit",
) -> Splits:
    """Split the training images into train and validation sets and scale all.

    The first ``validation_size`` training images form the validation set; the
    remaining ones form the training set, capped to their first
    ``train_size`` images if given.  The test set is kept whole.

    Scalings:
        ``"unit"``: pixel / 255, so values lie in [0, 1].
        ``"standardize"``: (pixel - mean) / std with a per-pixel mean and
        standard deviation computed on the (capped) training images only, so
        no validation or test information leaks in, and applied to all three
        sets.  Pixels constant on the training images (the always-black
        border) have std 0; they are divided by 1 instead, so they become 0
        rather than NaN.

    Args:
        raw: The dataset from :func:`load_raw`.
        validation_size: Number of validation images, in [1, 59999].
        train_size: Cap on training images, ``None`` or in
            [1, 60000 - validation_size].
        scaling: One of :data:`SCALINGS`.

    Returns:
        The splits, images as ``(n, 28, 28)`` ``float32`` and labels as
        ``int32``.

    Raises:
        ValueError: A size or the scaling is out of range.  Configs are
            validated elsewhere; this guards against programming errors.
    """
    n = len(raw.x_train)
    _check_sizes(n, validation_size, train_size)
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")

    stop = n if train_size is None else validation_size + train_size
    x_val = raw.x_train[:validation_size]
    x_tr = raw.x_train[validation_size:stop]

    if scaling == "unit":
        mean = std = None
    else:
        mean64, std64 = _pixel_mean_std(x_tr)
        std64[std64 == 0] = 1.0
        mean, std = mean64.astype(np.float32), std64.astype(np.float32)

    def scale(images: np.ndarray) -> np.ndarray:
        # Each result is written into one preallocated float32 array: no
        # float64 copy of the images and no second float32 temporary.
        out = np.empty(images.shape, dtype=np.float32)
        if mean is None or std is None:
            # uint8 / float32 computes in float32: the same rounding as the
            # usual x.astype("float32") / 255.
            np.divide(images, np.float32(255), out=out)
        else:
            np.subtract(images, mean, out=out)
            np.divide(out, std, out=out)
        return out

    return Splits(
        x_train=scale(x_tr),
        y_train=raw.y_train[validation_size:stop].astype(np.int32),
        x_val=scale(x_val),
        y_val=raw.y_train[:validation_size].astype(np.int32),
        x_test=scale(raw.x_test),
        y_test=raw.y_test.astype(np.int32),
        scaling=scaling,
    )


def load_splits(
    validation_size: int = 5000,
    train_size: int | None = None,
    scaling: str = "unit",
    data_dir: Path | None = None,
    download: bool = True,
) -> Splits:
    """Load the dataset and split it: :func:`load_raw` then :func:`prepare_splits`.

    Args:
        validation_size: See :func:`prepare_splits`.
        train_size: See :func:`prepare_splits`.
        scaling: See :func:`prepare_splits`.
        data_dir: See :func:`load_raw`.
        download: See :func:`load_raw`.

    Returns:
        The scaled splits.

    Raises:
        DataError: See :func:`load_raw`.
        ValueError: See :func:`prepare_splits`.
    """
    raw = load_raw(data_dir=data_dir, download=download)
    return prepare_splits(
        raw, validation_size=validation_size, train_size=train_size, scaling=scaling
    )
