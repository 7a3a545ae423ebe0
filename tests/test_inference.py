"""The web app's forward pass (model/inference.py) against things computed without it:
the training network's forward pass, the input normalisation written out by hand, and
softmax shares for a network whose logits are set by its biases."""
import os

import numpy as np
import pytest

from model import modelfile
from model import train as trainer
from model.inference import DEFAULT_MODEL_PATH, Model, Prediction, load_model
from model.network import Network

# Every layer kind inference knows, with a "same" and a "valid" convolution (no padding
# key: the default is 0) and a dropout that must be the identity at inference.
ARCH = [{"type": "conv2d", "filters": 3, "kernel": 5, "padding": 2}, {"type": "maxpool2d", "size": 2},
        {"type": "relu"}, {"type": "conv2d", "filters": 4, "kernel": 3}, {"type": "tanh"},
        {"type": "dropout", "rate": 0.5}, {"type": "flatten"}, {"type": "dense", "units": 12},
        {"type": "sigmoid"}, {"type": "dense", "units": 10}]


def meta_for(architecture, **extra):
    return {"architecture": architecture, "input": trainer.NORMALIZATION, "weights_sha256": "ab" * 32, **extra}


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def test_logits_match_the_training_network_layer_for_layer():
    net = Network(ARCH, seed=7)
    model = Model(meta_for(ARCH), net.state_dict())
    x = images(6)
    expected = trainer.predict_logits(net, x)
    assert expected.shape == (6, 10)
    np.testing.assert_allclose(model.logits(x), expected, rtol=1e-4, atol=1e-5)


def test_normalisation_is_the_trainers_and_the_defaults_are_plain_scaling():
    net = Network([{"type": "flatten"}], seed=0)
    x = np.array([[0, 255], [51, 128]], np.uint8).repeat(14, 0).repeat(14, 1)
    mnist = Model(meta_for([{"type": "flatten"}]), net.state_dict())
    expected = (x.astype(np.float64) / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(mnist.normalize(x), expected.reshape(1, 28, 28, 1), rtol=1e-5)
    plain = Model({"architecture": [{"type": "flatten"}], "input": {"shape": [28, 28, 1]},
                   "weights_sha256": "0" * 64}, {})
    np.testing.assert_allclose(plain.normalize(x), (x / 255.0).reshape(1, 28, 28, 1), rtol=1e-6)
    assert mnist.normalize(x).dtype == np.float32  # the whole forward pass then stays float32
    for stored, white in [({"scale": 127.5}, 2.0), ({"mean": 0.5}, 0.5), ({"std": 0.5}, 2.0),
                          ({"scale": 127.5, "mean": 0.5, "std": 0.5}, 3.0)]:
        model = Model({"architecture": [{"type": "flatten"}], "input": {"shape": [28, 28, 1], **stored},
                       "weights_sha256": "0" * 64}, {})
        assert float(model.normalize(x).max()) == pytest.approx(white, rel=1e-6), stored


def test_one_image_and_a_batch_of_one_give_the_same_answer():
    model = Model(meta_for(ARCH), Network(ARCH, seed=1).state_dict())
    x = images(1, seed=3)
    single, batch = model.predict(x[0]), model.predict(x)
    np.testing.assert_array_equal(single.probabilities, batch.probabilities)
    assert single.probabilities.shape == (1, 10)


def test_wrong_image_size_is_refused_naming_both_shapes():
    model = Model(meta_for(ARCH), Network(ARCH, seed=1).state_dict())
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 28, 28\), got \(2, 28, 27\)"):
        model.predict(np.zeros((2, 28, 27), np.uint8))
    arch = [{"type": "flatten"}, {"type": "dense", "units": 10}]
    wide = Model({"architecture": arch, "input": {"shape": [20, 24, 1]}, "weights_sha256": "0" * 64},
                 Network(arch, input_shape=(20, 24, 1), seed=0).state_dict())
    assert wide.predict_proba(np.zeros((1, 20, 24), np.uint8)).shape == (1, 10)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 20, 24\), got \(1, 24, 20\)"):
        wide.predict(np.zeros((1, 24, 20), np.uint8))


def test_images_with_a_channel_axis_are_read_like_plain_ones():
    """(N, 28, 28, 1), the trainer's NHWC layout, is the same images as (N, 28, 28)."""
    model = Model(meta_for(ARCH), Network(ARCH, seed=1).state_dict())
    x = images(3, seed=6)
    np.testing.assert_array_equal(model.predict_proba(x[..., None]), model.predict_proba(x))


def biased_model(logits, **meta):
    """A network whose logits are its biases: a zero dense layer over a flattened image."""
    arch = [{"type": "flatten"}, {"type": "dense", "units": len(logits)}]
    params = {"1.W": np.zeros((784, len(logits)), np.float32), "1.b": np.asarray(logits, np.float32)}
    return Model(meta_for(arch, **meta), params)


def test_a_ten_output_model_never_rejects():
    logits = np.log([0.1, 0.2, 0.3, 0.05, 0.05, 0.1, 0.05, 0.05, 0.05, 0.05])
    model = biased_model(logits)
    assert not model.rejects
    out = model.predict(images(3))
    assert isinstance(out, Prediction)
    np.testing.assert_allclose(out.probabilities, np.tile(np.exp(logits), (3, 1)), rtol=1e-5)
    np.testing.assert_array_equal(out.not_digit, np.zeros(3, np.float32))
    assert out.not_digit.dtype == np.float32
    assert out.is_digit.dtype == bool and out.is_digit.all()
    np.testing.assert_array_equal(model.predict_proba(images(3)), out.probabilities)


def test_the_eleventh_output_is_the_not_a_digit_share_and_digits_are_renormalised():
    """Shares 0.3, 0.2 and 0.5 for "not a digit": the digits become 0.6 and 0.4."""
    shares = np.full(11, 1e-9)
    shares[[3, 7, 10]] = [0.3, 0.2, 0.5]
    model = biased_model(np.log(shares), not_digit={"threshold": 0.6})
    assert model.rejects
    out = model.predict(images(2))
    assert out.probabilities.shape == (2, 10)
    assert out.probabilities.flags.c_contiguous
    np.testing.assert_allclose(out.probabilities[:, [3, 7]], [[0.6, 0.4]] * 2, rtol=1e-5)
    np.testing.assert_allclose(out.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out.not_digit, [0.5, 0.5], rtol=1e-5)
    np.testing.assert_array_equal(out.is_digit, [True, True])


def test_an_image_is_a_digit_only_strictly_below_the_threshold():
    shares = np.full(11, 0.05)
    shares[10] = 0.5
    model = biased_model(np.log(shares), not_digit={"threshold": 0.9})
    score = float(model.predict(images(1)).not_digit[0])
    for threshold, is_digit in [(np.nextafter(np.float32(score), np.float32(1)), True), (score, False),
                                (np.nextafter(np.float32(score), np.float32(0)), False)]:
        at_threshold = biased_model(np.log(shares), not_digit={"threshold": float(threshold)})
        assert at_threshold.predict(images(1)).is_digit[0] == is_digit, threshold


def test_parameters_are_float32_and_read_only():
    params = {k: v.astype(np.float64) for k, v in Network(ARCH, seed=2).state_dict().items()}
    model = Model(meta_for(ARCH), params)
    weight = model._params["0.W"]
    assert weight.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        weight[0, 0, 0, 0] = 1.0


def test_identity_names_the_model_by_a_short_hash():
    model = biased_model(np.zeros(10), name="tiny", test_accuracy=0.9912)
    assert model.identity == {"name": "tiny", "sha256": "ab" * 6, "test_accuracy": 0.9912}
    assert biased_model(np.zeros(10)).identity == {"name": "model", "sha256": "ab" * 6, "test_accuracy": None}


def test_load_model_reads_the_shipped_file_by_default_and_keeps_an_absolute_path(tmp_path, monkeypatch):
    shipped = load_model()
    assert shipped.path == DEFAULT_MODEL_PATH and os.path.isabs(shipped.path)
    params = Network(ARCH, seed=5).state_dict()
    modelfile.save(tmp_path / "m.npz", {"name": "small", "architecture": ARCH, "input": trainer.NORMALIZATION},
                   params)
    monkeypatch.chdir(tmp_path)
    model = load_model("m.npz")
    assert model.path == str(tmp_path / "m.npz")
    assert model.identity["name"] == "small"
    np.testing.assert_allclose(model.logits(images(2)), trainer.predict_logits(Network(ARCH, seed=5), images(2)),
                               rtol=1e-4, atol=1e-5)
