"""The `.npz` model format: one file, weights plus a JSON `meta` entry.

Shared by the trainer (writes) and the inference module (reads), and kept free
of training code so the web app loads it with NumPy alone. Nothing is ever
unpickled: a file holding object arrays is refused, not executed.
"""
import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "digitdraw-npz"
FORMAT_VERSION = 1
META_KEY = "meta"


class ModelFileError(ValueError):
    """A model file that cannot be trusted; the message names file and problem."""


def param_shapes(architecture, input_shape):
    """Walk the architecture from an (H, W, C) input and return
    ({param name: shape}, output shape). Raises ModelFileError on nonsense."""
    shape = tuple(int(s) for s in input_shape)
    shapes = {}
    for index, layer in enumerate(architecture):
        kind = layer.get("type") if isinstance(layer, dict) else None
        try:
            if kind == "conv2d":
                h, w, c = shape
                k, p, f = int(layer["kernel"]), int(layer.get("padding", 0)), int(layer["filters"])
                shapes[f"{index}.W"] = (k, k, c, f)
                shapes[f"{index}.b"] = (f,)
                shape = (h + 2 * p - k + 1, w + 2 * p - k + 1, f)
            elif kind == "maxpool2d":
                h, w, c = shape
                s = int(layer["size"])
                if h % s or w % s:
                    raise ModelFileError(f"layer {index}: pool size {s} does not divide {h}x{w}")
                shape = (h // s, w // s, c)
            elif kind == "flatten":
                shape = (int(np.prod(shape)),)
            elif kind == "dense":
                (d,) = shape
                u = int(layer["units"])
                shapes[f"{index}.W"] = (d, u)
                shapes[f"{index}.b"] = (u,)
                shape = (u,)
            elif kind in ("relu", "dropout", "sigmoid", "tanh"):
                pass
            else:
                raise ModelFileError(f"layer {index}: unknown layer type {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"layer {index} ({kind}): malformed description: {exc}") from None
        if min(shape) <= 0:
            raise ModelFileError(f"layer {index} ({kind}): output shape {shape} is empty")
    return shapes, shape


def weights_sha256(params):
    """Digest of every array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(params):
        arr = np.ascontiguousarray(params[name])
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def save(path, meta, params):
    """Write atomically: a crash mid-write never leaves a half model at `path`."""
    meta = dict(meta)
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    meta["weights_sha256"] = weights_sha256(params)
    param_shapes(meta["architecture"], meta["input"]["shape"])  # refuse to write nonsense
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the model from a server's user
        with os.fdopen(fd, "wb") as fh:
            arrays = {name: np.asarray(a, dtype=np.float32) for name, a in params.items()}
            np.savez(fh, **{META_KEY: np.array(json.dumps(meta, sort_keys=True))}, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return meta


def load(path):
    """Read and validate a model file; returns (meta, params) or raises ModelFileError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: model file not found")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":
            raise ModelFileError(f"{path}: not an .npz archive (no zip signature)")
    try:
        # Opened here, not by np.load, so a corrupt archive cannot leak the handle.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            names = list(archive.files)
            if META_KEY not in names:
                raise ModelFileError(f"{path}: no '{META_KEY}' entry; not a {FORMAT} file")
            meta_raw = archive[META_KEY]
            params = {name: archive[name] for name in names if name != META_KEY}
    except ModelFileError:
        raise
    except ValueError as exc:  # object arrays need pickle: refused
        raise ModelFileError(f"{path}: refused, it holds pickled objects or is malformed ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path}: unreadable or truncated .npz ({exc})") from None
    if meta_raw.dtype.kind != "U" or meta_raw.shape != ():
        raise ModelFileError(f"{path}: '{META_KEY}' must be a JSON string")
    try:
        meta = json.loads(str(meta_raw))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: '{META_KEY}' is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a {FORMAT} file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {meta.get('format_version')!r} is not supported "
            f"(this code reads version {FORMAT_VERSION}); retrain or convert the model")
    try:
        expected, _ = param_shapes(meta["architecture"], meta["input"]["shape"])
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{path}: meta lacks architecture or input shape ({exc})") from None
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{path}: arrays do not match the architecture "
                             f"(missing {missing}, unexpected {extra})")
    for name, shape in expected.items():
        arr = params[name]
        if arr.dtype != np.float32:
            raise ModelFileError(f"{path}: array {name} is {arr.dtype}, expected float32")
        if arr.shape != shape:
            raise ModelFileError(f"{path}: array {name} has shape {arr.shape}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise ModelFileError(f"{path}: array {name} holds NaN or infinity")
    if weights_sha256(params) != meta.get("weights_sha256"):
        raise ModelFileError(f"{path}: weights do not match the SHA-256 recorded in meta (altered file)")
    return meta, params
