"""Tests of nnexp.data: search order, verification, the decoded cache, splits.

The fake data folders are built from the real files of Debian's
``dataset-fashion-mnist`` package (symlinked, or rewritten where a test damages
one), and HOME, KERAS_HOME, NNEXP_DATA_DIR and the system folder are redirected
into ``tmp_path`` so the user's own caches are never read or written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nnexp import data
from nnexp.errors import DataError

REAL = Path("/usr/share/datasets/fashion-mnist")
NAMES = data.FILES
CACHE_NAME = "fashion-mnist-decoded-v1.npz"
HINT = (
    "Get the data with `apt-get install dataset-fashion-mnist`, point "
    "NNEXP_DATA_DIR (or --data-dir) at a folder holding the four files, "
    "or allow the download."
)

pytestmark = pytest.mark.skipif(
    not all((REAL / name).is_file() for name in NAMES.values()),
    reason="needs the Debian package: apt-get install dataset-fashion-mnist",
)


# --------------------------------------------------------------------------
# Helpers and fixtures


def idx_bytes(role: str) -> bytes:
    """The decompressed IDX bytes of one real file."""
    return gzip.decompress((REAL / NAMES[role]).read_bytes())


@pytest.fixture(scope="module")
def reference() -> data.RawData:
    """The real data decoded independently of nnexp.data, as the oracle."""

    def decode(role: str, offset: int) -> np.ndarray:
        return np.frombuffer(idx_bytes(role), np.uint8, offset=offset)

    return data.RawData(
        x_train=decode("train_images", 16).reshape(60000, 28, 28),
        y_train=decode("train_labels", 8),
        x_test=decode("test_images", 16).reshape(10000, 28, 28),
        y_test=decode("test_labels", 8),
        source=str(REAL),
    )


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME at an empty folder and hide every other data source."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.delenv("NNEXP_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "no-system-copy")
    return home


def make_source(folder: Path, omit: tuple[str, ...] = ()) -> Path:
    """Create a data folder of symlinks to the real files, minus ``omit``."""
    folder.mkdir(parents=True, exist_ok=True)
    for role, name in NAMES.items():
        if role not in omit:
            (folder / name).symlink_to(REAL / name)
    return folder


def replace_file(folder: Path, role: str, content: bytes) -> Path:
    """Replace one file of a data folder by ``content`` (already gzipped)."""
    path = folder / NAMES[role]
    path.unlink()
    path.write_bytes(content)
    return path


def keras_dir(home: Path) -> Path:
    return home / ".keras" / "datasets" / "fashion-mnist"


def cache_file(home: Path) -> Path:
    return home / ".keras" / "datasets" / "fashion-mnist-nnexp" / CACHE_NAME


def assert_same(raw: data.RawData, ref: data.RawData) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test"):
        got, want = getattr(raw, name), getattr(ref, name)
        assert got.dtype == np.uint8
        assert got.shape == want.shape
        assert np.array_equal(got, want), name


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count full decodes (as opposed to cache hits)."""
    calls: list[int] = []
    original = data._decode

    def counting(paths: dict[str, Path]) -> dict[str, np.ndarray]:
        calls.append(1)
        return original(paths)

    monkeypatch.setattr(data, "_decode", counting)
    return calls


# --------------------------------------------------------------------------
# Search order


@pytest.mark.parametrize(
    ("with_arg", "with_env", "first"),
    [
        pytest.param(True, True, "data_dir", id="argument-beats-env"),
        pytest.param(False, True, "NNEXP_DATA_DIR", id="env"),
        pytest.param(False, False, None, id="neither"),
    ],
)
def test_candidate_dirs_order(
    tmp_path: Path,
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_arg: bool,
    with_env: bool,
    first: str | None,
) -> None:
    if with_env:
        monkeypatch.setenv("NNEXP_DATA_DIR", str(tmp_path / "env"))
    got = data.candidate_dirs(tmp_path / "arg" if with_arg else None)
    expected = [
        ("Keras cache", keras_dir(isolated)),
        ("system package", tmp_path / "no-system-copy"),
    ]
    if first is not None:
        folder = tmp_path / ("arg" if first == "data_dir" else "env")
        expected.insert(0, (first, folder))
    assert got == expected


def test_keras_home_is_respected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert data.keras_cache_dir() == tmp_path / "kh" / "datasets" / "fashion-mnist"
    assert data.cache_dir() == tmp_path / "kh" / "datasets" / "fashion-mnist-nnexp"


@pytest.mark.parametrize(
    ("present", "winner"),
    [
        pytest.param(("arg", "env", "keras", "system"), "arg", id="argument-first"),
        pytest.param(("env", "keras", "system"), "env", id="env-beats-keras"),
        pytest.param(("keras", "system"), "keras", id="keras-beats-system"),
        pytest.param(("system",), "system", id="system-last"),
    ],
)
def test_search_order(
    tmp_path: Path,
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    reference: data.RawData,
    present: tuple[str, ...],
    winner: str,
) -> None:
    folders = {
        "arg": tmp_path / "arg",
        "env": tmp_path / "env",
        "keras": keras_dir(isolated),
        "system": tmp_path / "system",
    }
    for name in present:
        make_source(folders[name])
    monkeypatch.setenv("NNEXP_DATA_DIR", str(folders["env"]))
    if "env" not in present:
        monkeypatch.delenv("NNEXP_DATA_DIR")
    monkeypatch.setattr(data, "SYSTEM_DIR", folders["system"])
    arg = folders["arg"] if "arg" in present else None

    raw = data.load_raw(data_dir=arg, download=False)

    assert raw.source == str(folders[winner])
    assert_same(raw, reference)


def test_incomplete_folder_is_skipped(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(keras_dir(isolated), omit=("test_images",))
    monkeypatch.setattr(data, "SYSTEM_DIR", make_source(tmp_path / "system"))
    assert data.load_raw(download=False).source == str(tmp_path / "system")


# --------------------------------------------------------------------------
# Missing data


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        pytest.param(
            "argument", "missing t10k-labels-idx1-ubyte.gz", id="data_dir-lacks-a-file"
        ),
        pytest.param("absent", "no such folder", id="data_dir-does-not-exist"),
        pytest.param("env", "no Fashion-MNIST files", id="env-folder-empty"),
    ],
)
def test_explicit_folder_without_files_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, problem: str
) -> None:
    # A good system copy exists: the error must not fall through to it.
    monkeypatch.setattr(data, "SYSTEM_DIR", make_source(tmp_path / "system"))
    folder = tmp_path / "mine"
    arg: Path | None = folder
    label = "data_dir"
    if how == "argument":
        make_source(folder, omit=("test_labels",))
    elif how == "env":
        folder.mkdir()
        monkeypatch.setenv("NNEXP_DATA_DIR", str(folder))
        arg, label = None, "NNEXP_DATA_DIR"

    with pytest.raises(DataError) as err:
        data.load_raw(data_dir=arg, download=False)

    assert str(err.value) == (
        f"Fashion-MNIST not found in {folder}: {problem}.\n"
        f"Looked in:\n  {label} {folder} ({problem})\n{HINT}"
    )


def test_missing_everywhere_without_download_lists_folders(
    tmp_path: Path, isolated: Path
) -> None:
    make_source(keras_dir(isolated), omit=("train_images", "test_labels"))
    with pytest.raises(DataError) as err:
        data.load_raw(download=False)
    assert str(err.value) == (
        "Fashion-MNIST not found, and downloading it is turned off.\n"
        "Looked in:\n"
        f"  Keras cache {keras_dir(isolated)} (missing "
        "train-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)\n"
        f"  system package {tmp_path / 'no-system-copy'} (no such folder)\n"
        f"{HINT}"
    )


def test_download_without_keras_is_a_data_error(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes "import keras" raise ImportError.
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(DataError) as err:
        data.load_raw(download=True)
    message = str(err.value)
    assert message.startswith(
        "Downloading Fashion-MNIST needs Keras, which failed to import: "
    )
    assert message.endswith(
        f"Looked in:\n  Keras cache {keras_dir(isolated)} (no such folder)\n"
        f"  system package {tmp_path / 'no-system-copy'} (no such folder)\n"
        "Get the data with `apt-get install dataset-fashion-mnist`, or point "
        "NNEXP_DATA_DIR (or --data-dir) at a folder holding the four files."
    )


@pytest.mark.slow
def test_download_through_keras(tmp_path: Path, reference: data.RawData) -> None:
    """Download from a file:// origin with the real Keras (slow: imports TF).

    Runs in a subprocess so importing Keras here cannot fix KERAS_HOME or the
    backend for the other tests of the session.
    """
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from nnexp import data
        from nnexp.errors import DataError

        data.SYSTEM_DIR = Path({str(tmp_path / "no-system")!r})
        data.ORIGIN = {(tmp_path / "nowhere").as_uri() + "/"!r}
        try:
            data.load_raw()
        except DataError as exc:
            print("FAILED:", str(exc).splitlines()[0])
        data.ORIGIN = {REAL.as_uri() + "/"!r}
        print("SOURCE:", data.load_raw().source)
        """
    )
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "KERAS_HOME": str(tmp_path / "kh"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("NNEXP_DATA_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(("F", "S"))]
    target = tmp_path / "kh" / "datasets" / "fashion-mnist"
    assert lines[0].startswith(
        f"FAILED: Downloading train-images-idx3-ubyte.gz from "
        f"{(tmp_path / 'nowhere').as_uri()}/ failed: URL fetch failure"
    )
    assert lines[1] == f"SOURCE: {target}"
    for name in NAMES.values():
        assert (target / name).read_bytes() == (REAL / name).read_bytes()


# --------------------------------------------------------------------------
# Corrupt files


def regzip(role: str, edit: Callable[[bytearray], bytes | bytearray]) -> bytes:
    """Gzip an edited copy of a real file's decompressed content."""
    return gzip.compress(bytes(edit(bytearray(idx_bytes(role)))), compresslevel=1)


def gzip_bomb(head: bytes, zeros: int) -> bytes:
    """Gzip ``head`` followed by ``zeros`` zero bytes, built a chunk at a time."""
    buffer = io.BytesIO()
    chunk = bytes(1 << 20)
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1) as stream:
        stream.write(head)
        for _ in range(zeros // len(chunk)):
            stream.write(chunk)
    return buffer.getvalue()


def flip_label(b: bytearray) -> bytearray:
    b[8] = (b[8] + 1) % 10  # still a valid label, so only the checksum notices
    return b


def set_magic(b: bytearray) -> bytearray:
    b[0:4] = (2051).to_bytes(4, "big")
    return b


def set_count(b: bytearray) -> bytearray:
    b[4:8] = (9999).to_bytes(4, "big")
    return b


CORRUPTIONS = [
    pytest.param(
        "test_labels",
        lambda: regzip("test_labels", flip_label),
        "checksum mismatch (SHA-256 of the decompressed data is {digest}..., "
        "expected 0402a96d92fd...)",
        id="checksum",
    ),
    pytest.param(
        "train_labels",
        lambda: (REAL / NAMES["train_labels"]).read_bytes()[:10000],
        "the gzip data is truncated",
        id="truncated-gzip",
    ),
    pytest.param(
        "test_labels",
        lambda: regzip("test_labels", set_magic),
        "bad IDX magic number 2051 (expected 2049)",
        id="bad-magic",
    ),
    pytest.param(
        "test_labels",
        lambda: regzip("test_labels", set_count),
        "IDX header says shape (9999,), expected (10000,)",
        id="wrong-count",
    ),
    pytest.param(
        "test_labels",
        lambda: regzip("test_labels", lambda b: b + b"\0"),
        "holds more than the 10008 bytes its IDX header implies",
        id="extra-bytes",
    ),
    pytest.param(
        "test_labels",
        # 1 GB of zeros after the labels, 1 MB gzipped: never inflated whole.
        lambda: gzip_bomb(idx_bytes("test_labels"), 1 << 30),
        "holds more than the 10008 bytes its IDX header implies",
        id="gzip-bomb",
    ),
]


@pytest.mark.parametrize(("role", "content", "problem"), CORRUPTIONS)
def test_corrupt_file_is_reported(
    tmp_path: Path,
    role: str,
    content: Callable[[], bytes],
    problem: str,
) -> None:
    folder = make_source(tmp_path / "copy")
    packed = content()
    replace_file(folder, role, packed)
    if "{digest}" in problem:
        digest = hashlib.sha256(gzip.decompress(packed)).hexdigest()[:12]
        problem = problem.format(digest=digest)

    with pytest.raises(DataError) as err:
        data.load_raw(data_dir=folder, download=False)

    assert str(err.value) == (
        f"Fashion-MNIST file {NAMES[role]} in {folder} is corrupt: {problem}.\n"
        f"Looked in:\n  data_dir {folder} (has all four files)\n{HINT}"
    )


def test_corrupt_keras_cache_does_not_fall_through(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first complete folder is used; a damaged copy is reported, not
    # silently replaced by the good system copy behind it.
    monkeypatch.setattr(data, "SYSTEM_DIR", make_source(tmp_path / "system"))
    folder = make_source(keras_dir(isolated))
    replace_file(folder, "train_labels", b"not gzip at all")
    with pytest.raises(DataError) as err:
        data.load_raw(download=True)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(
        f"Fashion-MNIST file train-labels-idx1-ubyte.gz in {folder} is corrupt: "
        "not valid gzip data ("
    )
    assert lines[1:] == [
        "Looked in:",
        f"  Keras cache {folder} (has all four files)",
        HINT,
    ]


# --------------------------------------------------------------------------
# The decoded cache


@pytest.mark.parametrize("keras_home", [False, True], ids=["HOME", "KERAS_HOME"])
def test_cache_hit_returns_identical_arrays(
    tmp_path: Path,
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    reference: data.RawData,
    decode_calls: list[int],
    keras_home: bool,
) -> None:
    base = isolated / ".keras"
    if keras_home:
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
        base = tmp_path / "kh"
    cached = base / "datasets" / "fashion-mnist-nnexp" / CACHE_NAME
    folder = make_source(tmp_path / "src")

    first = data.load_raw(data_dir=folder, download=False)
    assert cached.is_file()
    # Written atomically: no temporary file is left behind.
    assert [p.name for p in cached.parent.iterdir()] == [CACHE_NAME]
    second = data.load_raw(data_dir=folder, download=False)

    assert len(decode_calls) == 1
    assert second.source == first.source == str(folder)
    assert_same(first, reference)
    assert_same(second, reference)
    for raw in (first, second):
        assert not raw.x_train.flags.writeable


def test_cache_is_tied_to_the_source(tmp_path: Path, decode_calls: list[int]) -> None:
    one = make_source(tmp_path / "one")
    two = make_source(tmp_path / "two")
    # A real copy, not a symlink: the test edits it and must not touch REAL.
    labels = replace_file(
        two, "test_labels", (REAL / NAMES["test_labels"]).read_bytes()
    )

    data.load_raw(data_dir=one, download=False)
    data.load_raw(data_dir=one, download=False)
    assert len(decode_calls) == 1

    # Another folder, even with the same content, is decoded and verified.
    assert data.load_raw(data_dir=two, download=False).source == str(two)
    assert len(decode_calls) == 2

    # Touching a file changes its mtime: decoded again.
    os.utime(labels, ns=(0, 1_000_000_000))
    data.load_raw(data_dir=two, download=False)
    assert len(decode_calls) == 3

    # A file edited in place after caching, same size and mtime put back, is
    # still verified (its ctime changed), not masked by the cache.
    before = labels.stat()
    content = bytearray(labels.read_bytes())
    content[len(content) // 2] ^= 0xFF
    labels.write_bytes(bytes(content))
    os.utime(labels, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert labels.stat().st_size == before.st_size
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz in .* is corrupt"):
        data.load_raw(data_dir=two, download=False)
    assert len(decode_calls) == 4


def truncate(path: Path) -> None:
    # Cuts off the zip's central directory: not a zip file any more.
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_byte(path: Path) -> None:
    # The middle of the file lies inside x_train; only the zip CRC notices.
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


def wrong_shapes(path: Path) -> None:
    # Right key, wrong arrays: only the shape check catches this.
    with np.load(path) as npz:
        key = npz["key"]
    np.savez(
        path.with_suffix(""),  # np.savez appends .npz
        key=key,
        x_train=np.zeros((10, 28, 28), np.uint8),
        y_train=np.zeros(10, np.uint8),
        x_test=np.zeros((10, 28, 28), np.uint8),
        y_test=np.zeros(10, np.uint8),
    )


def missing_member(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        keep = {n: zf.read(n) for n in zf.namelist() if n != "y_test.npy"}
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in keep.items():
            zf.writestr(name, content)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data folder and the cache load_raw writes for it, built once.

    Copying this cache into place is much cheaper than decoding again in every
    test that damages it.
    """
    root = tmp_path_factory.mktemp("shared")
    folder = make_source(root / "src")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(root))
        mp.delenv("KERAS_HOME", raising=False)
        mp.delenv("NNEXP_DATA_DIR", raising=False)
        data.load_raw(data_dir=folder, download=False)
    return folder, cache_file(root)


@pytest.mark.parametrize(
    "damage",
    [truncate, flip_byte, wrong_shapes, missing_member],
    ids=["truncated", "flipped-byte", "wrong-shapes", "missing-array"],
)
def test_corrupt_cache_is_ignored_and_rebuilt(
    isolated: Path,
    shared_cache: tuple[Path, Path],
    reference: data.RawData,
    decode_calls: list[int],
    damage: Callable[[Path], None],
) -> None:
    folder, good = shared_cache
    cached = cache_file(isolated)
    cached.parent.mkdir(parents=True)
    shutil.copyfile(good, cached)
    data.load_raw(data_dir=folder, download=False)
    assert decode_calls == []  # the copied cache is valid here

    damage(cached)
    rebuilt = data.load_raw(data_dir=folder, download=False)
    assert len(decode_calls) == 1
    assert_same(rebuilt, reference)

    # The rewritten cache is good again.
    assert_same(data.load_raw(data_dir=folder, download=False), reference)
    assert len(decode_calls) == 1


def test_unwritable_cache_is_skipped_silently(
    tmp_path: Path, isolated: Path, reference: data.RawData
) -> None:
    # A file where the cache folder should be makes it uncreatable, even as root.
    blocker = isolated / ".keras" / "datasets" / "fashion-mnist-nnexp"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    raw = data.load_raw(data_dir=make_source(tmp_path / "src"), download=False)
    assert_same(raw, reference)
    assert blocker.read_text() == "in the way"


# --------------------------------------------------------------------------
# Splits and scaling


@pytest.mark.parametrize(
    ("validation_size", "train_size", "n_train"),
    [
        pytest.param(5000, None, 55000, id="default"),
        pytest.param(10000, 20000, 20000, id="capped"),
        pytest.param(1, 100, 100, id="smallest-validation"),
        pytest.param(59999, None, 1, id="largest-validation"),
        pytest.param(5000, 55000, 55000, id="cap-equals-rest"),
    ],
)
def test_split_sizes_and_order(
    reference: data.RawData,
    validation_size: int,
    train_size: int | None,
    n_train: int,
) -> None:
    s = data.prepare_splits(reference, validation_size, train_size)

    assert s.x_train.shape == (n_train, 28, 28)
    assert s.x_val.shape == (validation_size, 28, 28)
    assert s.x_test.shape == (10000, 28, 28)
    assert {a.dtype for a in (s.x_train, s.x_val, s.x_test)} == {np.dtype("float32")}
    assert {a.dtype for a in (s.y_train, s.y_val, s.y_test)} == {np.dtype("int32")}
    assert s.scaling == "unit"

    # Validation = the first images; training = the next n_train.
    x, y = reference.x_train, reference.y_train
    stop = validation_size + n_train
    # (np.array_equal: assert_array_equal is several times slower at this size.)
    assert np.array_equal(s.x_val, x[:validation_size] / np.float32(255))
    assert np.array_equal(s.y_val, y[:validation_size])
    assert np.array_equal(s.x_train, x[validation_size:stop] / np.float32(255))
    assert np.array_equal(s.y_train, y[validation_size:stop])
    assert np.array_equal(s.y_test, reference.y_test)


@pytest.mark.parametrize(
    ("validation_size", "train_size", "scaling"),
    [
        pytest.param(0, None, "unit", id="no-validation"),
        pytest.param(60000, None, "unit", id="no-training-left"),
        pytest.param(5000, 0, "unit", id="zero-train"),
        pytest.param(5000, 55001, "unit", id="train-too-big"),
        pytest.param(2.5, None, "unit", id="float-size"),
        pytest.param(5000, None, "minmax", id="unknown-scaling"),
    ],
)
def test_invalid_arguments_raise_value_error(
    reference: data.RawData,
    validation_size: int,
    train_size: int | None,
    scaling: str,
) -> None:
    with pytest.raises(ValueError):
        data.prepare_splits(reference, validation_size, train_size, scaling)


def test_unit_scaling_range(reference: data.RawData) -> None:
    s = data.prepare_splits(reference)
    for images in (s.x_train, s.x_val, s.x_test):
        assert images.min() == 0.0
        assert images.max() == 1.0
    assert np.array_equal(s.x_test, reference.x_test.astype("float32") / 255)


@pytest.mark.parametrize(
    "train_size", [None, 1000, 1], ids=["full", "capped-1000", "single-image"]
)
def test_standardize_uses_training_statistics(
    reference: data.RawData, train_size: int | None
) -> None:
    s = data.prepare_splits(
        reference, validation_size=5000, train_size=train_size, scaling="standardize"
    )
    assert s.scaling == "standardize"
    stop = None if train_size is None else 5000 + train_size
    # dtype= makes NumPy accumulate in float64 without a float64 copy.
    train = reference.x_train[5000:stop]
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    varies = std > 0

    got = s.x_train
    np.testing.assert_allclose(got.mean(axis=0, dtype=np.float64)[varies], 0, atol=1e-4)
    np.testing.assert_allclose(got.std(axis=0, dtype=np.float64)[varies], 1, atol=1e-3)
    # Pixels constant on the training images (all of them, for a single
    # image) are divided by 1, not 0: they become 0, and nothing is NaN.
    assert (got[:, ~varies] == 0).all()
    for images in (s.x_train, s.x_val, s.x_test):
        assert np.isfinite(images).all()

    # Validation and test use the training mean and std, not their own.
    std[~varies] = 1.0
    for images, raw in (
        (s.x_val, reference.x_train[:5000]),
        (s.x_test, reference.x_test),
    ):
        np.testing.assert_allclose(images, (raw - mean) / std, rtol=1e-5, atol=1e-4)


def test_load_splits_combines_both_steps(
    tmp_path: Path, reference: data.RawData
) -> None:
    s = data.load_splits(
        validation_size=100,
        train_size=200,
        data_dir=make_source(tmp_path / "src"),
        download=False,
    )
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (200, 100, 10000)
    np.testing.assert_array_equal(s.y_train, reference.y_train[100:300])
