"""IDX reader: good files round-trip, every kind of damage gets a message naming file and problem."""
import gzip
import struct

import numpy as np
import pytest

from model import idx


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


def test_idx_error_is_a_value_error():
    assert issubclass(idx.IdxError, ValueError)


def test_writer_refuses_non_uint8_and_odd_shapes(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        idx.encode_idx(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match="1-d .* or 3-d"):
        idx.encode_idx(np.zeros((2, 28), np.uint8))
