"""MNIST as NumPy arrays, from a local directory or the download cache.

The SHA-256 of each file's decompressed bytes travels with the arrays so the
trainer can record exactly which data a model saw. A file with the official
size but another checksum is corrupt, and refused: training on flipped bits
would go unnoticed. Files of other sizes (a subset, a custom set in IDX form)
are accepted and reported as not official.
"""
import hashlib
import json
import os
import sys

import numpy as np

from . import download as downloader
from . import idx

SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FILENAMES = tuple(name for pair in SPLITS.values() for name in pair)
# Decompressed sizes of the official files: header plus 28x28 pixels or one byte per label.
OFFICIAL_SIZES = {
    "train-images-idx3-ubyte.gz": 16 + 60000 * 28 * 28,
    "train-labels-idx1-ubyte.gz": 8 + 60000,
    "t10k-images-idx3-ubyte.gz": 16 + 10000 * 28 * 28,
    "t10k-labels-idx1-ubyte.gz": 8 + 10000,
}
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class MnistError(ValueError):
    """MNIST files that are missing, inconsistent or corrupt."""


def find_local(data_dir, filename):
    """Path of `filename` in data_dir, compressed or not (`x.gz` or `x`); None if absent."""
    for candidate in (filename, filename[:-3] if filename.endswith(".gz") else None):
        if candidate and os.path.isfile(os.path.join(data_dir, candidate)):
            return os.path.join(data_dir, candidate)
    return None


def mnist_dir_from_env():
    """Directory holding all four MNIST files: $MNIST_DIR, else ../shared/mnist beside the
    repository; None when neither has them (tests skip then)."""
    candidate = os.environ.get("MNIST_DIR") or os.path.join(REPO_ROOT, os.pardir, "shared", "mnist")
    candidate = os.path.normpath(os.path.abspath(candidate))
    if os.path.isdir(candidate) and all(find_local(candidate, name) for name in FILENAMES):
        return candidate
    return None


def _check_official(path, filename, data, digest, checksums):
    if len(data) == OFFICIAL_SIZES.get(filename) and digest != checksums.get(filename, digest):
        raise MnistError(f"{path}: has the size of the official {filename} but its decompressed "
                         f"SHA-256 is {digest}, expected {checksums[filename]}; the file is corrupt "
                         f"or altered: delete it and fetch it again")


def _read_local(data_dir, filenames, checksums):
    if not os.path.isdir(data_dir):
        raise MnistError(f"{data_dir}: MNIST directory not found")
    missing = [name for name in filenames if find_local(data_dir, name) is None]
    if missing:
        raise MnistError(f"{data_dir}: missing {', '.join(missing)} (each may also be stored "
                         f"uncompressed, without .gz)")
    contents = {}
    for name in filenames:
        path = find_local(data_dir, name)
        data = idx.read_bytes(path)
        digest = hashlib.sha256(data).hexdigest()
        _check_official(path, name, data, digest, checksums)
        contents[name] = (path, data, digest)
    return contents


def _read_cached(cache_dir, filenames, checksums, download, mirrors, progress):
    contents = {}
    for name in filenames:
        path = os.path.join(cache_dir, name)
        data = digest = None
        if os.path.isfile(path):
            try:
                data = idx.read_bytes(path)
                digest = hashlib.sha256(data).hexdigest()
            except idx.IdxError:
                data = None
        if data is None or digest != checksums[name]:
            if not download:
                state = "is corrupt" if os.path.isfile(path) else "is missing"
                raise MnistError(f"{path} {state} and downloading is disabled; pass a directory "
                                 f"holding the MNIST files instead")
            path = downloader.download_file(name, cache_dir, checksums[name], mirrors=mirrors,
                                            progress=progress)
            data = idx.read_bytes(path)
            digest = hashlib.sha256(data).hexdigest()
        contents[name] = (path, data, digest)
    return contents


def load_mnist(data_dir=None, cache_dir=None, download=True, splits=("train", "test"),
               mirrors=downloader.MIRRORS, checksums=None, progress=None):
    """Load MNIST as uint8 arrays.

    data_dir: use the files there only (never the network). Otherwise the cache
    (default ~/.cache/digitdraw/mnist) is used, downloading what is missing when
    `download` is true. Returns {"train_images": (60000, 28, 28), "train_labels":
    (60000,), "test_images", "test_labels", "sha256": {filename: hex of the
    decompressed bytes}, "official": all checksums are the official ones,
    "source": directory read}; only the requested splits are present.
    """
    checksums = downloader.MNIST_SHA256 if checksums is None else checksums
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; choose from {sorted(SPLITS)}")
    filenames = [name for split in splits for name in SPLITS[split]]
    if data_dir is not None:
        source = os.path.abspath(os.fspath(data_dir))
        contents = _read_local(source, filenames, checksums)
    else:
        source = os.path.abspath(os.fspath(cache_dir or downloader.default_cache_dir()))
        if progress is None:
            progress = sys.stderr.isatty()
        contents = _read_cached(source, filenames, checksums, download, mirrors, progress)

    result = {"sha256": {}, "source": source}
    for split in splits:
        images_name, labels_name = SPLITS[split]
        images_path, images_data, _ = contents[images_name]
        labels_path, labels_data, _ = contents[labels_name]
        images = idx.parse_images(images_data, os.path.basename(images_path))
        labels = idx.parse_labels(labels_data, os.path.basename(labels_path))
        if len(images) != len(labels):
            raise MnistError(f"{source}: {os.path.basename(images_path)} holds {len(images)} images "
                             f"but {os.path.basename(labels_path)} holds {len(labels)} labels")
        result[f"{split}_images"], result[f"{split}_labels"] = images, labels
    result["sha256"] = {name: contents[name][2] for name in filenames}
    result["official"] = all(result["sha256"][name] == downloader.MNIST_SHA256.get(name)
                             for name in filenames)
    return result


def load_extra(path):
    """More training images from an .npz (tools.pen_dataset writes them): uint8
    `images` (N, 28, 28) in the MNIST convention and `labels` (N,), 10 meaning
    "not a digit". Returns (images, labels, short meta for the model file)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
            info = json.loads(str(data["meta"])) if "meta" in data.files else {}
    except (OSError, ValueError, KeyError) as exc:
        raise MnistError(f"{path}: not a training-image .npz with 'images' and 'labels' ({exc})") from None
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise MnistError(f"{path}: images must be uint8 (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or (len(labels) and int(labels.max()) > 10):
        raise MnistError(f"{path}: labels must be (N,) integers 0-10")
    counts = {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))}
    meta = {"images": int(len(images)), "per_label": counts,
            "sha256": hashlib.sha256(images.tobytes() + labels.astype(np.uint8).tobytes()).hexdigest()}
    for key in ("seed", "institutions", "renders", "shapes", "mnist_restroke", "judged"):
        if key in info:
            meta[key] = info[key]
    return images, labels.astype(np.uint8), meta


def load_calibration(path):
    """(images, labels, variants or None, short meta): a calibration set is an
    extra-images file whose `variants` array, when present, names the canvas
    variant of each image, so every variant can be held to the refusal rate."""
    images, labels, meta = load_extra(path)
    with np.load(path, allow_pickle=False) as data:
        variants = data["variants"] if "variants" in data.files else None
    if variants is not None and variants.shape != labels.shape:
        raise MnistError(f"{path}: 'variants' must name one variant per image")
    if variants is None:
        print(f"warning: {path} names no canvas variants (an older file): the threshold is set on "
              "the mix of variants; `rm` it and run `make pen-data` for one that holds each variant", flush=True)
    return images, labels, variants, meta
