"""IDX reader and load_mnist on local files: good data round-trips, every kind of damage
gets a message naming the file and the problem."""
import gzip
import hashlib
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from model import datasets, download, idx
from tests.mnist_data import require_mnist, skip_or_fail


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)


@pytest.fixture
def labels():
    return np.random.default_rng(1).integers(0, 10, size=7, dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_round_trip_gz_and_raw(tmp_path, images, labels, suffix):
    img_path = idx.write_idx(tmp_path / f"imgs-idx3-ubyte{suffix}", images)
    lbl_path = idx.write_idx(tmp_path / f"lbls-idx1-ubyte{suffix}", labels)
    got_images, got_labels = idx.read_images(img_path), idx.read_labels(lbl_path)
    assert got_images.dtype == np.uint8 and got_images.shape == (7, 28, 28)
    assert got_labels.dtype == np.uint8 and got_labels.shape == (7,)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.flags.writeable  # callers may augment in place


def test_gz_file_is_really_compressed_and_raw_is_not(tmp_path, images):
    gz = idx.write_idx(tmp_path / "a.gz", images)
    raw = idx.write_idx(tmp_path / "a", images)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    assert raw.read_bytes()[:4] == struct.pack(">i", 2051)
    assert idx.read_bytes(gz) == idx.read_bytes(raw) == raw.read_bytes()


def test_header_is_big_endian_mnist_layout(images):
    data = idx.encode_idx(images)
    assert struct.unpack(">4i", data[:16]) == (2051, 7, 28, 28)
    assert data[16:] == images.tobytes()


def test_inflated_file_under_a_gz_name_is_accepted(tmp_path, labels):
    path = tmp_path / "labels.gz"
    path.write_bytes(idx.encode_idx(labels))
    np.testing.assert_array_equal(idx.read_labels(path), labels)


def test_wrong_magic_says_what_the_file_is(tmp_path, images, labels):
    path = idx.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", images)
    with pytest.raises(idx.IdxError, match=r"train-labels-idx1-ubyte.gz: magic number 2051, "
                                           r"expected 2049 .*it is an images file"):
        idx.read_labels(path)


def test_garbage_magic(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x0d\x03" + bytes(100))
    with pytest.raises(idx.IdxError, match=r"x-idx3-ubyte: magic number 3331, expected 2051"):
        idx.read_images(path)


def test_truncated_header(tmp_path, images):
    path = tmp_path / "t-idx3-ubyte"
    path.write_bytes(idx.encode_idx(images)[:10])
    with pytest.raises(idx.IdxError, match=r"t-idx3-ubyte: header is 10 bytes, expected 16 \(truncated\?\)"):
        idx.read_images(path)


def test_file_shorter_than_magic(tmp_path):
    path = tmp_path / "empty-idx1-ubyte"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(idx.IdxError, match=r"empty-idx1-ubyte: only 2 bytes"):
        idx.read_labels(path)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_truncated_pixels(tmp_path, images, suffix):
    data = idx.encode_idx(images)[:16 + 1200]
    path = tmp_path / f"train-images-idx3-ubyte{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    expected = 7 * 28 * 28
    with pytest.raises(idx.IdxError, match=rf"train-images-idx3-ubyte{suffix}: expected {expected} "
                                           rf"pixel bytes after the header, found 1200 \(truncated\?\)"):
        idx.read_images(path)


def test_trailing_bytes(tmp_path, labels):
    path = tmp_path / "l-idx1-ubyte"
    path.write_bytes(idx.encode_idx(labels) + b"\x01\x02")
    with pytest.raises(idx.IdxError, match=r"expected 7 label bytes after the header, found 9 "
                                           r"\(2 unexpected trailing bytes\)"):
        idx.read_labels(path)


def test_wrong_image_size(tmp_path):
    path = idx.write_idx(tmp_path / "small.gz", np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(idx.IdxError, match=r"small.gz: images are 8x8, expected 28x28"):
        idx.read_images(path)
    assert idx.read_images(path, size=(8, 8)).shape == (2, 8, 8)


def test_label_out_of_range(tmp_path):
    path = idx.write_idx(tmp_path / "l.gz", np.array([1, 2, 12, 3], np.uint8))
    with pytest.raises(idx.IdxError, match=r"l.gz: label 12 at index 2 is not a digit 0-9"):
        idx.read_labels(path)


def test_truncated_gzip_stream(tmp_path, images):
    compressed = gzip.compress(idx.encode_idx(images))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(idx.IdxError, match=r"cut.gz: gzip stream ends early \(truncated download\?\)"):
        idx.read_images(path)


def test_corrupt_gzip_body(tmp_path, images):
    compressed = bytearray(gzip.compress(idx.encode_idx(images)))
    compressed[-8] ^= 0xFF  # flip the stored CRC32
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(idx.IdxError, match=r"crc.gz: corrupt gzip data"):
        idx.read_images(path)


def test_not_gzip_at_all(tmp_path):
    path = tmp_path / "page.gz"
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(idx.IdxError, match=r"page.gz: not a gzip file"):
        idx.read_images(path)


def test_missing_file(tmp_path):
    with pytest.raises(idx.IdxError, match=r"nope.gz: file not found"):
        idx.read_labels(tmp_path / "nope.gz")


def test_decompression_cap(tmp_path, images):
    path = idx.write_idx(tmp_path / "big.gz", images)
    with pytest.raises(idx.IdxError, match=r"big.gz: more than 100 bytes once decompressed"):
        idx.read_bytes(path, max_bytes=100)


def test_each_wrong_magic_is_named_in_full():
    labels, images = idx.encode_idx(np.zeros(3, np.uint8)), idx.encode_idx(np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(idx.IdxError, match=r"^l: magic number 2049, expected 2051 for images \(it is a labels file\)$"):
        idx.parse_images(labels, "l")
    with pytest.raises(idx.IdxError,
                       match=r"^i: magic number 2051, expected 2049 for labels \(it is an images file\)$"):
        idx.parse_labels(images, "i")
    with pytest.raises(idx.IdxError, match=r"^g: magic number -1, expected 2049 for labels "
                                           r"\(not an IDX ubyte file, or corrupt\)$"):
        idx.parse_labels(b"\xff\xff\xff\xff" + bytes(8), "g")  # the magic is a signed int


def test_four_bytes_are_a_magic_number_and_three_are_not():
    with pytest.raises(idx.IdxError, match=r"^l: only 3 bytes, too short for an IDX header$"):
        idx.parse_labels(idx.encode_idx(np.zeros(3, np.uint8))[:3], "l")
    with pytest.raises(idx.IdxError, match=r"^l: header is 4 bytes, expected 8 \(truncated\?\)$"):
        idx.parse_labels(idx.encode_idx(np.zeros(3, np.uint8))[:4], "l")


def test_an_empty_file_is_a_valid_empty_array_and_a_negative_size_is_refused():
    assert idx.parse_labels(idx.encode_idx(np.zeros(0, np.uint8)), "l").shape == (0,)
    assert idx.parse_images(idx.encode_idx(np.zeros((0, 28, 28), np.uint8)), "i").shape == (0, 28, 28)
    with pytest.raises(idx.IdxError, match=r"^l: negative dimension in header \(-1,\)$"):
        idx.parse_labels(struct.pack(">ii", idx.LABELS_MAGIC, -1), "l")


def test_image_size_message_names_rows_then_columns():
    data = idx.encode_idx(np.zeros((2, 20, 30), np.uint8))
    with pytest.raises(idx.IdxError, match=r"^i: images are 20x30, expected 32x28$"):
        idx.parse_images(data, "i", size=(32, 28))


def test_a_label_equal_to_the_class_count_is_refused(tmp_path):
    path = idx.write_idx(tmp_path / "l.gz", np.array([3, 10], np.uint8))
    with pytest.raises(idx.IdxError, match=r"label 10 at index 1 is not a digit 0-9"):
        idx.read_labels(path)
    with pytest.raises(idx.IdxError, match=r"label 10 at index 0 is not a digit 0-9"):
        idx.parse_labels(idx.encode_idx(np.array([10], np.uint8)), "l")  # ten classes by default
    with pytest.raises(idx.IdxError, match=r"label 7 at index 0 is not a digit 0-4"):
        idx.read_labels(idx.write_idx(tmp_path / "five.gz", np.array([7], np.uint8)), num_classes=5)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_the_decompression_cap_is_exact(tmp_path, suffix):
    """A file of exactly the cap is read whole; one byte more is refused."""
    labels = np.arange(92, dtype=np.uint8)  # 8 header bytes + 92 = 100
    path = idx.write_idx(tmp_path / f"l{suffix}", labels)
    assert idx.read_bytes(path, max_bytes=100) == idx.encode_idx(labels)
    with pytest.raises(idx.IdxError, match=r"more than 99 bytes once decompressed"):
        idx.read_bytes(path, max_bytes=99)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_a_file_over_the_cap_is_refused_without_reading_it_all(tmp_path, suffix):
    """A 64 MB stream (64 KB as gzip: a small "bomb") against a 1 MB cap: at most the cap
    and a byte are ever held, so the peak stays far below what reading it whole takes."""
    import tracemalloc
    path = tmp_path / f"bomb{suffix}"
    data = bytes(64 * 2**20)
    path.write_bytes(gzip.compress(data, compresslevel=1) if suffix else data)
    del data
    tracemalloc.start()
    try:
        with pytest.raises(idx.IdxError, match="more than 1048576 bytes once decompressed"):
            idx.read_bytes(path, max_bytes=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.0f} MB while refusing"


def test_an_unreadable_path_is_named(tmp_path):
    with pytest.raises(idx.IdxError, match=rf"^{tmp_path.name}: cannot read \("):
        idx.read_bytes(tmp_path)  # a directory


def test_written_gzip_files_carry_no_timestamp(tmp_path):
    """The same arrays give the same bytes on any day (reproducible data files)."""
    data = idx.write_idx(tmp_path / "l.gz", np.arange(5, dtype=np.uint8)).read_bytes()
    assert data[:2] == idx.GZIP_MAGIC and data[4:8] == bytes(4)


def test_idx_error_is_a_value_error():
    assert issubclass(idx.IdxError, ValueError)


def test_writer_refuses_non_uint8_and_odd_shapes(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        idx.encode_idx(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match="1-d .* or 3-d"):
        idx.encode_idx(np.zeros((2, 28), np.uint8))


# --- load_mnist from a local directory (model/datasets.py) -------------------------------

def write_mnist_dir(directory, n_train=12, n_test=5, compress=True, seed=0):
    """A tiny dataset in the four standard file names; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for key, name in zip(arrays, datasets.FILENAMES):
        idx.write_idx(directory / (name if compress else name[:-3]), arrays[key])
    return arrays


def test_load_mnist_from_directory(tmp_path):
    arrays = write_mnist_dir(tmp_path)
    data = datasets.load_mnist(tmp_path)
    for key, expected in arrays.items():
        assert data[key].dtype == np.uint8
        np.testing.assert_array_equal(data[key], expected)
    for key, name in zip(arrays, datasets.FILENAMES):
        assert data["sha256"][name] == hashlib.sha256(idx.encode_idx(arrays[key])).hexdigest()
    assert data["official"] is False
    assert data["source"] == str(tmp_path)


def test_load_mnist_accepts_uncompressed_names(tmp_path):
    arrays = write_mnist_dir(tmp_path, compress=False)
    data = datasets.load_mnist(tmp_path)
    np.testing.assert_array_equal(data["test_images"], arrays["test_images"])
    assert sorted(data["sha256"]) == sorted(datasets.FILENAMES)  # keyed by the standard names


def test_load_mnist_one_split(tmp_path):
    arrays = write_mnist_dir(tmp_path)
    data = datasets.load_mnist(tmp_path, splits=("test",))
    assert "train_images" not in data and sorted(data["sha256"]) == sorted(datasets.SPLITS["test"])
    np.testing.assert_array_equal(data["test_labels"], arrays["test_labels"])


def test_load_mnist_missing_files(tmp_path):
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(datasets.MnistError, match=r"missing t10k-labels-idx1-ubyte.gz \(each may also"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_missing_directory(tmp_path):
    with pytest.raises(datasets.MnistError, match=r"nowhere: MNIST directory not found"):
        datasets.load_mnist(tmp_path / "nowhere")


def test_load_mnist_count_mismatch(tmp_path):
    write_mnist_dir(tmp_path)
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(datasets.MnistError, match=r"train-images-idx3-ubyte.gz holds 12 images but "
                                                  r"train-labels-idx1-ubyte.gz holds 11 labels"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_reports_which_file_is_truncated(tmp_path):
    write_mnist_dir(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx.read_bytes(path)[:-100]))
    with pytest.raises(idx.IdxError, match=r"t10k-images-idx3-ubyte.gz: expected 3920 pixel bytes "
                                           r"after the header, found 3820 \(truncated\?\)"):
        datasets.load_mnist(tmp_path)


def test_official_size_with_wrong_checksum_is_refused(tmp_path):
    write_mnist_dir(tmp_path)
    # Same size as the official test labels (10000), other content: a corrupt copy.
    idx.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(10000, np.uint8))
    with pytest.raises(datasets.MnistError, match=r"has the size of the official t10k-labels-idx1-ubyte.gz "
                                                  r"but its decompressed SHA-256 is [0-9a-f]{64}, expected "
                                                  r"ff7bcfd4.*corrupt or altered"):
        datasets.load_mnist(tmp_path, splits=("test",))


def test_mnist_dir_from_env(tmp_path, monkeypatch):
    write_mnist_dir(tmp_path)
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    assert datasets.mnist_dir_from_env() == str(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    assert datasets.mnist_dir_from_env() is None


# --- the real MNIST ------------------------------------------------------------------------

MNIST_DIR = datasets.mnist_dir_from_env()


def published_checksums():
    """The SHA-256 table from shared/mnist/README.md, an independent copy of the constants."""
    readme = os.path.join(MNIST_DIR, "README.md")
    if not os.path.isfile(readme):
        skip_or_fail(f"no README.md with checksums beside the MNIST files in {MNIST_DIR}")
    rows = re.findall(r"^\|\s*(\S+\.gz)\s*\|.*\|\s*([0-9a-f]{64})\s*\|$", Path(readme).read_text(), re.M)
    return dict(rows)


@pytest.mark.mnist
def test_real_mnist_shapes_and_checksums():
    require_mnist()
    data = datasets.load_mnist(MNIST_DIR)
    assert data["train_images"].shape == (60000, 28, 28) and data["train_images"].dtype == np.uint8
    assert data["train_labels"].shape == (60000,) and data["train_labels"].dtype == np.uint8
    assert data["test_images"].shape == (10000, 28, 28) and data["test_images"].dtype == np.uint8
    assert data["test_labels"].shape == (10000,) and data["test_labels"].dtype == np.uint8
    assert data["sha256"] == download.MNIST_SHA256 == published_checksums()
    assert data["official"] is True
    # Every digit is present in both splits, and the images are white ink on black.
    assert set(np.unique(data["train_labels"])) == set(range(10)) == set(np.unique(data["test_labels"]))
    assert np.median(data["test_images"]) == 0 and data["test_images"].max() == 255
