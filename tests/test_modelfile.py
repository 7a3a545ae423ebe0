"""The .npz format: round trip, and refusal of every kind of altered file."""
import io
import json
import os
import stat
import zipfile

import numpy as np
import pytest

from model import modelfile
from model.inference import load_model
from model.modelfile import ModelFileError

ARCH = [{"type": "conv2d", "filters": 2, "kernel": 3, "padding": 1}, {"type": "maxpool2d", "size": 2},
        {"type": "relu"}, {"type": "flatten"}, {"type": "dense", "units": 10}]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUT = {"shape": [28, 28, 1], "layout": "NHWC", "scale": 255.0, "mean": 0.1307, "std": 0.3081}


def make_params(seed=0):
    shapes, _ = modelfile.param_shapes(ARCH, INPUT["shape"])
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) * 0.1 for k, s in shapes.items()}


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.npz"
    params = make_params()
    modelfile.save(path, {"name": "tiny", "architecture": ARCH, "input": INPUT}, params)
    return path, params


def rewrite(path, arrays):
    """Write arrays as an .npz exactly as given (no re-hashing): a tampered file."""
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def read_all(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_round_trip_keeps_arrays_and_meta(saved):
    path, params = saved
    meta, loaded = modelfile.load(path)
    assert set(loaded) == set(params)
    for k in params:
        np.testing.assert_array_equal(loaded[k], params[k])
    assert meta["format_version"] == modelfile.FORMAT_VERSION
    assert meta["weights_sha256"] == modelfile.weights_sha256(params)
    assert meta["name"] == "tiny"


def test_loaded_model_predicts_probabilities(saved):
    path, _ = saved
    m = load_model(path)
    p = m.predict_proba(np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8))
    assert p.shape == (5, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(p >= 0)


def test_save_refuses_nonsense_before_touching_the_file(tmp_path):
    path = tmp_path / "m.npz"
    modelfile.save(path, {"architecture": ARCH, "input": INPUT}, make_params())
    bad = make_params()
    bad["0.W"] = bad["0.W"][..., :1]  # wrong shape: save must refuse before replacing anything
    original = path.read_bytes()
    with pytest.raises(modelfile.ModelFileError):
        modelfile.save(path, {"architecture": [{"type": "nonsense"}], "input": INPUT}, bad)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


CRASH_MID_WRITE = """
import resource, signal, sys
import numpy as np
from model import modelfile
from tests.test_modelfile import ARCH, INPUT, make_params
path, big = sys.argv[1], int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (big, big))
arch = ARCH[:-1] + [{"type": "dense", "units": 200}]  # a model far larger than the limit
shapes, _ = modelfile.param_shapes(arch, INPUT["shape"])
params = {k: np.ones(s, np.float32) for k, s in shapes.items()}
try:
    modelfile.save(path, {"architecture": arch, "input": INPUT}, params)
except OSError as exc:
    print("write failed:", exc)
"""


def test_a_write_that_fails_midway_leaves_the_old_model_and_no_temp_file(tmp_path):
    """A real failed write (the file-size limit, as a full disk): the temp file had
    been created and partly written when it failed. The old model must still load."""
    import subprocess
    import sys
    path = tmp_path / "m.npz"
    params = make_params()
    modelfile.save(path, {"name": "old", "architecture": ARCH, "input": INPUT}, params)
    original = path.read_bytes()
    limit = len(original) * 4  # the old file fits; the new one (300 kB of weights) does not
    result = subprocess.run([sys.executable, "-c", CRASH_MID_WRITE, str(path), str(limit)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("write failed:"), result.stdout
    assert path.read_bytes() == original
    assert modelfile.load(path)[0]["name"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_float64_parameters_are_saved_as_the_float32_they_hash_to(tmp_path):
    """Save what you hash: float64 arrays are written as float32, and the recorded
    digest is of those, so the file loads instead of being refused as altered."""
    path = tmp_path / "m.npz"
    params64 = {k: v.astype(np.float64) / 3 for k, v in make_params().items()}
    meta = modelfile.save(path, {"architecture": ARCH, "input": INPUT}, params64)
    loaded_meta, loaded = modelfile.load(path)
    assert loaded_meta["weights_sha256"] == meta["weights_sha256"]
    for k, v in params64.items():
        assert loaded[k].dtype == np.float32
        np.testing.assert_array_equal(loaded[k], v.astype(np.float32))


def test_saved_file_is_readable_by_others(saved):
    path, _ = saved
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a server running as another user can load it


@pytest.mark.parametrize("change,message", [
    (lambda a: a.update({"0.W": a["0.W"][..., :1]}), "shape"),
    (lambda a: a.update({"0.W": a["0.W"].astype(np.float64)}), "float64"),
    (lambda a: a.pop("4.b"), "missing"),
    (lambda a: a.update({"extra": np.zeros(3, np.float32)}), "unexpected"),
    (lambda a: a["4.W"].__setitem__((0, 0), a["4.W"][0, 0] + 1), "SHA-256"),
    (lambda a: a["4.W"].__setitem__((0, 0), np.nan), "NaN"),
])
def test_tampered_arrays_are_refused(saved, change, message):
    path, _ = saved
    arrays = read_all(path)
    change(arrays)
    rewrite(path, arrays)
    with pytest.raises(ModelFileError, match=message):
        modelfile.load(path)


def test_other_format_version_is_refused_with_a_clear_message(saved):
    path, _ = saved
    arrays = read_all(path)
    meta = json.loads(str(arrays["meta"]))
    meta["format_version"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    rewrite(path, arrays)
    with pytest.raises(ModelFileError, match="format version 99 is not supported"):
        modelfile.load(path)


def test_architecture_mismatch_is_refused(saved):
    path, _ = saved
    arrays = read_all(path)
    meta = json.loads(str(arrays["meta"]))
    meta["architecture"][0]["filters"] = 3
    arrays["meta"] = np.array(json.dumps(meta))
    rewrite(path, arrays)
    with pytest.raises(ModelFileError, match="shape"):
        modelfile.load(path)


def test_pickled_objects_are_refused_not_executed(tmp_path, saved):
    path, _ = saved
    arrays = read_all(path)
    arrays["4.b"] = np.array([{"evil": 1}], dtype=object)
    target = tmp_path / "pickled.npz"
    with open(target, "wb") as fh:
        np.savez(fh, **arrays)  # np.savez pickles object arrays
    with pytest.raises(ModelFileError, match="pickled"):
        modelfile.load(target)


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.9])
def test_truncated_file_is_refused(saved, keep):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ModelFileError):
        modelfile.load(path)


def test_missing_file_and_non_npz_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        modelfile.load(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(ModelFileError, match="not an .npz archive"):
        modelfile.load(junk)


def test_meta_that_is_not_json_is_refused(saved):
    path, _ = saved
    arrays = read_all(path)
    arrays["meta"] = np.array("{not json")
    rewrite(path, arrays)
    with pytest.raises(ModelFileError, match="JSON"):
        modelfile.load(path)


def test_zip_with_unrelated_member_is_refused(tmp_path):
    target = tmp_path / "other.npz"
    with zipfile.ZipFile(target, "w") as z:
        buf = io.BytesIO()
        np.save(buf, np.zeros(3, np.float32))
        z.writestr("weights.npy", buf.getvalue())
    with pytest.raises(ModelFileError, match="meta"):
        modelfile.load(target)


def test_temp_file_is_hidden_beside_the_target(tmp_path, monkeypatch):
    """os.replace is only atomic within one file system, so the temp file is written in
    the target's own directory; hidden, so a glob for *.npz never lists a half-written model."""
    replaced = []
    real_replace = os.replace

    def replace(src, dst):
        replaced.append((os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "models" / "m.npz"
    modelfile.save(target, {"architecture": ARCH, "input": INPUT}, make_params())
    ((src, dst),) = replaced
    assert os.path.dirname(src) == os.path.dirname(dst) == str(tmp_path / "models")
    assert os.path.basename(src).startswith(".") and dst == str(target)


def test_param_shapes_names_the_bad_layer_and_gives_the_output_shape():
    shapes, out = modelfile.param_shapes(ARCH, INPUT["shape"])
    assert out == (10,) and shapes["4.W"] == (392, 10)
    assert modelfile.param_shapes([], (28, 28, 1)) == ({}, (28, 28, 1))
    with pytest.raises(ModelFileError, match=r"layer 1: unknown layer type 'softmax'"):
        modelfile.param_shapes([{"type": "relu"}, {"type": "softmax"}], (28, 28, 1))


def test_meta_is_stored_as_canonical_json(tmp_path):
    """Keys sorted: the same meta gives the same stored text whatever order it was built in."""
    texts = []
    for order in (("name", "architecture", "input"), ("input", "architecture", "name")):
        meta = {key: {"name": "tiny", "architecture": ARCH, "input": INPUT}[key] for key in order}
        path = tmp_path / f"{order[0]}.npz"
        modelfile.save(path, meta, make_params())
        texts.append(str(read_all(path)["meta"]))
    assert texts[0] == texts[1]
    assert list(json.loads(texts[0])) == sorted(json.loads(texts[0]))


class _TouchOnUnpickle:
    """Unpickling this creates a file: the proof a pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_inside_the_archive_is_never_executed(tmp_path, saved):
    path, _ = saved
    marker = tmp_path / "pickle-ran"
    arrays = read_all(path)
    arrays["4.b"] = np.array([_TouchOnUnpickle(marker)], dtype=object)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ModelFileError, match="pickled"):
        modelfile.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("meta", [np.array(3), np.array(["{}"])], ids=["number", "array of strings"])
def test_meta_must_be_one_json_string(saved, meta):
    path, _ = saved
    arrays = read_all(path)
    arrays["meta"] = meta
    rewrite(path, arrays)
    with pytest.raises(ModelFileError, match="must be a JSON string"):
        modelfile.load(path)


def test_truncated_archive_says_so(saved):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.9)])
    with pytest.raises(ModelFileError, match="unreadable or truncated"):
        modelfile.load(path)


@pytest.mark.parametrize("meta,message", [
    ("[1, 2]", "not a digitdraw-npz file"),
    ('{"format": "other"}', "not a digitdraw-npz file"),
    ('{"format": "digitdraw-npz", "format_version": 1}', "lacks architecture or input shape"),
], ids=["a list", "another format", "no architecture"])
def test_meta_of_another_kind_is_refused_saying_why(saved, meta, message):
    path, _ = saved
    arrays = read_all(path)
    arrays["meta"] = np.array(meta)
    rewrite(path, arrays)
    with pytest.raises(ModelFileError, match=message):
        modelfile.load(path)
