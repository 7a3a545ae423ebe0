"""Reader and writer for the IDX files MNIST ships in, gzip-compressed or raw.

Data files come from mirrors and users' disks, so every header field is checked
against the bytes actually present: a truncated download or a corrupt archive
raises IdxError naming the file and the problem instead of yielding an array
of the wrong length or garbage pixels.
"""
import gzip
import os
import struct
import zlib

import numpy as np

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
GZIP_MAGIC = b"\x1f\x8b"
# The largest MNIST file decompresses to ~47 MB; a cap keeps a hostile or
# broken .gz from filling memory.
MAX_DECOMPRESSED_BYTES = 256 * 2**20


class IdxError(ValueError):
    """An IDX file that is missing, corrupt or not what was asked for."""


def read_bytes(path, max_bytes=MAX_DECOMPRESSED_BYTES):
    """The file's decompressed content (gzip is detected by its magic bytes,
    not by the name, so a mirror that already inflated a `.gz` still works)."""
    name = os.path.basename(os.fspath(path))
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head != GZIP_MAGIC:
                if os.fspath(path).endswith(".gz") and head[:1] != b"\x00":
                    raise IdxError(f"{name}: not a gzip file (and not a raw IDX file either)")
                data = fh.read(max_bytes + 1)
            else:
                with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                    data = gz.read(max_bytes + 1)
    except FileNotFoundError:
        raise IdxError(f"{name}: file not found ({path})") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise IdxError(f"{name}: corrupt gzip data ({exc})") from None
    except EOFError:
        raise IdxError(f"{name}: gzip stream ends early (truncated download?)") from None
    except OSError as exc:
        raise IdxError(f"{name}: cannot read ({exc})") from None
    if len(data) > max_bytes:
        raise IdxError(f"{name}: more than {max_bytes} bytes once decompressed; refusing it")
    return data


def parse_idx(data, name, magic):
    """Validate header against content and return the uint8 array it describes."""
    ndim = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}[magic]
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    header_size = 4 + 4 * ndim
    if len(data) < 4:
        raise IdxError(f"{name}: only {len(data)} bytes, too short for an IDX header")
    (found_magic,) = struct.unpack(">i", data[:4])
    if found_magic != magic:
        other = {IMAGES_MAGIC: "an images file", LABELS_MAGIC: "a labels file"}.get(found_magic)
        hint = f"it is {other}" if other else "not an IDX ubyte file, or corrupt"
        raise IdxError(f"{name}: magic number {found_magic}, expected {magic} for {kind} ({hint})")
    if len(data) < header_size:
        raise IdxError(f"{name}: header is {len(data)} bytes, expected {header_size} (truncated?)")
    dims = struct.unpack(f">{ndim}i", data[4:header_size])
    if min(dims) < 0:
        raise IdxError(f"{name}: negative dimension in header {dims}")
    expected = int(np.prod(dims, dtype=np.int64))
    found = len(data) - header_size
    unit = "pixel" if kind == "images" else "label"
    if found < expected:
        raise IdxError(f"{name}: expected {expected} {unit} bytes after the header, "
                       f"found {found} (truncated?)")
    if found > expected:
        raise IdxError(f"{name}: expected {expected} {unit} bytes after the header, "
                       f"found {found} ({found - expected} unexpected trailing bytes)")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims).copy()


def parse_images(data, name, size=(28, 28)):
    images = parse_idx(data, name, IMAGES_MAGIC)
    if size is not None and images.shape[1:] != tuple(size):
        raise IdxError(f"{name}: images are {images.shape[1]}x{images.shape[2]}, "
                       f"expected {size[0]}x{size[1]}")
    return images


def parse_labels(data, name, num_classes=10):
    labels = parse_idx(data, name, LABELS_MAGIC)
    if labels.size and int(labels.max()) >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise IdxError(f"{name}: label {int(labels[bad])} at index {bad} is not a digit 0-{num_classes - 1}")
    return labels


def read_images(path, size=(28, 28)):
    """(N, rows, cols) uint8 from an images file."""
    return parse_images(read_bytes(path), os.path.basename(os.fspath(path)), size)


def read_labels(path, num_classes=10):
    """(N,) uint8 from a labels file."""
    return parse_labels(read_bytes(path), os.path.basename(os.fspath(path)), num_classes)


def encode_idx(array):
    """IDX bytes for a uint8 array: (N,) -> labels file, (N, rows, cols) -> images file."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX ubyte files hold uint8, got {array.dtype}")
    magic = {1: LABELS_MAGIC, 3: IMAGES_MAGIC}.get(array.ndim)
    if magic is None:
        raise ValueError(f"expected a 1-d (labels) or 3-d (images) array, got shape {array.shape}")
    header = struct.pack(f">i{array.ndim}i", magic, *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx(path, array):
    """Write an IDX file, gzip-compressed when the name ends in `.gz`."""
    data = encode_idx(array)
    if os.fspath(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as fh:
        fh.write(data)
    return path
