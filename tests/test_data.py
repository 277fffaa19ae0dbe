"""fmnist/data.py and stages/flatten.py: IDX files checked byte by byte; a bad one is one line naming it, no output."""

import gzip
import hashlib

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT

from fmnist import data
from fmnist.errors import UserError
from stages import flatten

BUNDLED = PROJECT_ROOT / "data" / "fashion-mnist"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def idx_bytes(magic, dims, body):
    """An uncompressed IDX file: big-endian magic, one big-endian size per dimension, then the bytes."""
    return np.array([magic, *dims], dtype=">u4").tobytes() + bytes(body)


def labels_idx(count, magic=data.LABELS_MAGIC, body_size=None, value=3):
    return idx_bytes(magic, [count], [value] * (count if body_size is None else body_size))


def images_idx(count, side=(28, 28), magic=data.IMAGES_MAGIC, body_size=None):
    size = count * side[0] * side[1] if body_size is None else body_size
    return idx_bytes(magic, [count, *side], np.arange(size, dtype=np.uint64).astype(np.uint8).tobytes())


def write_gz(folder, name, content):
    path = folder / name
    path.write_bytes(gzip.compress(content, compresslevel=1))
    return path


def test_the_bundled_test_split_reads_as_arrays():
    images = data.read_idx(BUNDLED / TEST_IMAGES)
    labels = data.read_idx(BUNDLED / TEST_LABELS)
    assert images.shape == (10000, 784) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert images.max() == 255 and images.min() == 0


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (TEST_LABELS, labels_idx(10000, magic=data.IMAGES_MAGIC), "IDX magic number is 2051, expected 2049"),
        (TEST_IMAGES, images_idx(10, magic=data.LABELS_MAGIC), "IDX magic number is 2049, expected 2051"),
        (TEST_LABELS, labels_idx(9999), "IDX header says 9999 items, expected 10000"),
        (TEST_IMAGES, images_idx(10001), "IDX header says 10001 items, expected 10000"),
        (TEST_LABELS, labels_idx(10000, body_size=9999), "IDX body holds 9999 bytes, the header promises 10000"),
        (TEST_LABELS, labels_idx(10000, body_size=10001), "IDX body holds 10001 bytes, the header promises 10000"),
        (TEST_IMAGES, images_idx(10000, body_size=784 * 10000 - 1),
         "IDX body holds 7839999 bytes, the header promises 7840000"),
        (TEST_IMAGES, images_idx(10000, side=(28, 27)), "IDX images are 28x27, expected 28x28"),
        (TEST_IMAGES, labels_idx(10000)[:10], "IDX header is cut short (10 bytes)"),
        (TEST_LABELS, b"", "IDX header is cut short (0 bytes)"),
    ],
    ids=["labels-magic", "images-magic", "labels-count", "images-count", "labels-short", "labels-long",
         "images-short", "images-side", "header-cut", "empty"],
)
def test_a_bad_idx_file_is_one_line_naming_it(tmp_path, name, content, problem):
    path = write_gz(tmp_path, name, content)
    with pytest.raises(UserError) as caught:
        data.read_idx(path)
    assert str(caught.value) == f"{path}: {problem}"


def real_labels_gz():
    return (BUNDLED / TEST_LABELS).read_bytes()


@pytest.mark.parametrize(
    "damage",
    [
        lambda gz: gz[: len(gz) // 2],
        lambda gz: b"IDX, but not compressed" + gz,
        # The deflate stream intact, its CRC-32 trailer wrong: gzip's own check must catch it.
        lambda gz: gz[:-8] + bytes([gz[-8] ^ 0xFF]) + gz[-7:],
        # Bits flipped inside the deflate stream.
        lambda gz: gz[:100] + bytes(b ^ 0xFF for b in gz[100:140]) + gz[140:],
    ],
    ids=["half", "not-gzip", "bad-crc", "flipped-bits"],
)
def test_a_damaged_gzip_is_one_line_naming_it(tmp_path, damage):
    path = tmp_path / TEST_LABELS
    path.write_bytes(damage(real_labels_gz()))
    with pytest.raises(UserError) as caught:
        data.read_idx(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not readable gzip data (") and "\n" not in message


def write_test_split(folder, n_images=10000, n_labels=10000, label=3):
    write_gz(folder, TEST_IMAGES, images_idx(n_images))
    write_gz(folder, TEST_LABELS, labels_idx(n_labels, value=label))


def test_a_label_outside_the_ten_classes_is_refused(tmp_path):
    write_test_split(tmp_path, label=10)
    with pytest.raises(UserError, match=r"labels-idx1-ubyte\.gz: label 10 is outside 0\.\.9"):
        data.read_split(tmp_path, "test")


def tree_digest(folder):
    return {p.relative_to(folder): hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_the_stage_on_a_bad_raw_folder_exits_with_one_line_and_writes_nothing(tmp_path, capsys):
    raw, workspace = tmp_path / "raw", tmp_path / "workspace"
    raw.mkdir()
    workspace.mkdir()
    # The train split is good; the test labels are cut short, found after train is already written.
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", TEST_IMAGES):
        (raw / name).write_bytes((BUNDLED / name).read_bytes())
    (raw / TEST_LABELS).write_bytes(real_labels_gz()[:2000])

    with pytest.raises(SystemExit) as caught:
        flatten.main(["--raw", str(raw), "--out", str(workspace / "flat")])

    assert caught.value.code != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {raw / TEST_LABELS}: not readable gzip data")
    assert list(workspace.iterdir()) == []  # no flat folder, no temporary folder


def test_a_failed_run_keeps_the_previous_good_output_whole(tmp_path, capsys):
    # The stage alone (outside dvc, which would delete it first) never damages what is there.
    out = tmp_path / "flat"
    out.mkdir()
    (out / "train_images.npy").write_bytes(b"previous run")
    before = tree_digest(out)
    raw = tmp_path / "raw"
    raw.mkdir()
    write_gz(raw, "train-images-idx3-ubyte.gz", images_idx(5))

    with pytest.raises(SystemExit):
        flatten.main(["--raw", str(raw), "--out", str(out)])

    assert "IDX header says 5 items, expected 60000" in capsys.readouterr().err
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat", "raw"]


def test_the_stage_on_the_bundled_files_writes_uint8_arrays(tmp_path, capsys):
    out = tmp_path / "flat"
    flatten.main(["--raw", str(BUNDLED), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == [
        "test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy",
    ]
    for split, count in (("train", 60000), ("test", 10000)):
        images, labels = np.load(out / f"{split}_images.npy"), np.load(out / f"{split}_labels.npy")
        assert (images.dtype, images.shape) == (np.uint8, (count, 784))
        assert (labels.dtype, labels.shape) == (np.uint8, (count,))
        assert np.bincount(labels).tolist() == [count // 10] * 10  # Fashion-MNIST is balanced
    pixels, _ = data.load_split(out, "test")
    assert pixels.dtype == torch.float32 and pixels.min().item() == 0.0 and pixels.max().item() == 1.0
    assert "train: 60000 images of 784 pixels" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda npy: b"", "(No data left in file)"),
        (lambda npy: npy[: len(npy) // 2], "could only read 3856 elements"),
        # Not an .npy header: numpy would take it for a pickle, which is never loaded.
        (lambda npy: b"not an npy file" + npy, "pickle"),
        (lambda npy: None, "(file not found)"),
    ],
    ids=["empty", "cut-in-half", "not-npy", "missing"],
)
def test_a_damaged_flat_array_is_one_line_naming_it(tmp_path, damage, problem):
    flat = tmp_path / "flat"
    flat.mkdir()
    data.save_split(flat, "test", np.zeros((10, 784), dtype=np.uint8), np.zeros(10, dtype=np.uint8))
    path = flat / "test_images.npy"
    damaged = damage(path.read_bytes())
    if damaged is None:
        path.unlink()
    else:
        path.write_bytes(damaged)
    with pytest.raises(UserError) as caught:
        data.load_split(flat, "test")
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot be read (") and problem in message, message
    assert message.endswith("rerun `dvc repro flatten`") and "\n" not in message


def test_flat_arrays_of_different_lengths_are_refused(tmp_path):
    data.save_split(tmp_path, "test", np.zeros((10, 784), dtype=np.uint8), np.zeros(9, dtype=np.uint8))
    with pytest.raises(UserError, match=r"test images are uint8 \(10, 784\), not the uint8 \(N, 784\) pixels of 9"):
        data.load_split(tmp_path, "test")
