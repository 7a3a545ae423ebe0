"""From corrections to a better model: export the store to an .npz, fine-tune on
MNIST plus the corrections, compare old and new, refuse to replace a served
model that got worse on MNIST.

The loop test uses a handwriting the shipped model gets wrong: MNIST ones turned
on their side (the model reads them as 7 or 2). A few dozen of them as
corrections and one short epoch must move that class, on held-out ones too.
"""
import json

import numpy as np
import pytest

from app.store import Correction, open_store
from model import corrections, finetune, modelfile
from model.datasets import load_mnist
from model.inference import DEFAULT_MODEL_PATH, load_model
from tests.mnist_data import MNIST_DIR, require_mnist


@pytest.fixture
def mnist_dir():
    require_mnist()  # skips without MNIST, fails under CI=true
    return MNIST_DIR


@pytest.fixture
def store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    yield store
    store.close()


def test_export_writes_every_correction_with_counts(store, tmp_path, capsys):
    images = [np.full((28, 28), v, np.uint8) for v in (10, 20, 30)]
    for image, label in zip(images, (4, 4, 9)):
        store.add(Correction(label=label, image=image.tobytes(), predicted=1, confidence=0.9, is_digit=True,
                             model_name="m", model_sha256="c" * 64), cap=100)
    out = tmp_path / "exported.npz"
    corrections.main(["export", "--database-url", store.url, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "exported 3 corrections" in printed
    assert printed.splitlines()[-1].split() == ["count", "0", "0", "0", "0", "2", "0", "0", "0", "0", "1", "3"]
    got_images, got_labels, meta, digest = corrections.load(str(out))
    assert np.array_equal(got_images, np.stack(images)) and got_labels.tolist() == [4, 4, 9]
    assert meta["count"] == 3 and meta["per_label"]["4"] == 2 and len(digest) == 64
    with np.load(out, allow_pickle=False) as archive:  # plain arrays only, no pickles
        assert archive["predicted"].tolist() == [1, 1, 1]
        assert list(archive["model_sha256"]) == ["c" * 64] * 3


def test_a_file_that_is_not_a_corrections_export_is_refused(tmp_path):
    bogus = tmp_path / "x.npz"
    np.savez(bogus, images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(corrections.CorrectionsFileError, match="not a corrections file"):
        corrections.load(str(bogus))


def test_holdout_split_keeps_some_of_every_label_out():
    labels = np.array([1] * 8 + [2] * 2 + [3])
    train, held = finetune.holdout_split(labels, 0.25, np.random.default_rng(0))
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(11))
    assert sorted(labels[held].tolist()) == [1, 1, 2]  # 3 has a single correction: kept for training


def test_replacing_a_served_model_is_refused_when_mnist_drops(tmp_path):
    base = str(tmp_path / "base.npz")
    assert finetune.refusal_reason(DEFAULT_MODEL_PATH, base, 0.9950, 0.9920, force=False)
    assert finetune.refusal_reason(base, base, 0.9950, 0.9920, force=False)
    assert finetune.refusal_reason(base, base, 0.9950, 0.9935, force=False) is None   # 0.15 points
    assert finetune.refusal_reason(base, base, 0.9950, 0.9920, force=True) is None
    assert finetune.refusal_reason(str(tmp_path / "new.npz"), base, 0.9950, 0.90, force=False) is None


def sideways_ones(data_dir, count):
    test = load_mnist(data_dir=data_dir, splits=("test",))
    ones = test["test_images"][test["test_labels"] == 1][:count]
    return np.ascontiguousarray(np.rot90(ones, k=1, axes=(1, 2)))


@pytest.mark.mnist
@pytest.mark.slow
def test_export_then_finetune_moves_the_corrected_class(store, tmp_path, mnist_dir, capsys):
    sideways = sideways_ones(mnist_dir, 60)
    model = load_model()
    said = model.predict_proba(sideways).argmax(axis=1)
    assert np.mean(said == 1) < 0.1  # the shipped model gets this handwriting wrong
    for image, answer in zip(sideways, said):
        store.add(Correction(label=1, image=image.tobytes(), predicted=int(answer), confidence=0.5,
                             is_digit=True, model_name="m", model_sha256="d" * 64), cap=1000)
    exported = tmp_path / "corrections.npz"
    corrections.main(["export", "--database-url", store.url, "--out", str(exported)])

    out = tmp_path / "finetuned.npz"
    result = finetune.main(["--corrections", str(exported), "--data", mnist_dir, "--out", str(out),
                            "--epochs", "1", "--mnist-subset", "1000", "--weight", "10", "--lr", "2e-3",
                            "--holdout", "0.25", "--test-limit", "500", "--seed", "3"])
    printed = capsys.readouterr().out
    assert "held-out corrections (15)" in printed and "MNIST test (500)" in printed
    before, after = result["before"], result["after"]
    assert before["held-out corrections"] < 0.1
    assert after["held-out corrections"] >= 0.6           # the corrected class moved, on unseen drawings
    assert after["MNIST test"] >= before["MNIST test"] - 0.05  # and MNIST is still read

    new = load_model(str(out))
    assert new.architecture == model.architecture
    assert np.mean(new.predict_proba(sideways[45:]).argmax(axis=1) == 1) == pytest.approx(
        after["held-out corrections"], abs=0.15)  # the file holds what was evaluated
    tuned = new.meta["finetune"]
    assert tuned["base"]["weights_sha256"] == model.meta["weights_sha256"]
    assert tuned["corrections"]["count"] == 60 and tuned["corrections"]["held_out"] == 15
    assert tuned["corrections"]["per_label"]["1"] == 60 and tuned["corrections"]["weight"] == 10
    assert tuned["mnist"]["train_images"] == 1000 and tuned["evaluation"]["after"] == after
    assert new.meta["name"].endswith("-ft")


def eleven_output_copy(path):
    """The shipped model with its 11th "not a digit" output set (added when missing)
    to a strongly negative bias, so it rarely fires, and a threshold of 0.5."""
    meta, params = modelfile.load(DEFAULT_MODEL_PATH)
    last = max(i for i, layer in enumerate(meta["architecture"]) if layer["type"] == "dense")
    architecture = json.loads(json.dumps(meta["architecture"]))
    architecture[last]["units"] = 11
    rng = np.random.default_rng(0)
    weights, bias = params[f"{last}.W"][:, :10], params[f"{last}.b"][:10]
    params = dict(params)
    params[f"{last}.W"] = np.concatenate([weights, rng.normal(0, 0.01, (weights.shape[0], 1))], axis=1)
    params[f"{last}.b"] = np.concatenate([bias, [-4.0]])
    meta = {**meta, "architecture": architecture, "not_digit": {"threshold": 0.5}}
    modelfile.save(path, meta, {k: v.astype(np.float32) for k, v in params.items()})
    return last


@pytest.mark.mnist
@pytest.mark.slow
def test_an_eleven_output_model_keeps_its_not_a_digit_output(tmp_path, mnist_dir):
    base = str(tmp_path / "eleven.npz")
    last = eleven_output_copy(base)
    exported = str(tmp_path / "c.npz")
    corrections.save(exported, sideways_ones(mnist_dir, 20), np.ones(20, np.uint8))
    out = str(tmp_path / "eleven-ft.npz")
    finetune.main(["--base", base, "--corrections", exported, "--data", mnist_dir, "--out", out,
                   "--epochs", "1", "--mnist-subset", "300", "--test-limit", "200", "--lr", "2e-3"])
    old_meta, old = modelfile.load(base)
    new_meta, new = modelfile.load(out)
    assert new[f"{last}.W"].shape[1] == 11 and new_meta["not_digit"] == {"threshold": 0.5}
    assert np.array_equal(new[f"{last}.W"][:, 10], old[f"{last}.W"][:, 10])  # held fixed
    assert new[f"{last}.b"][10] == old[f"{last}.b"][10]
    assert not np.array_equal(new[f"{last}.W"][:, :10], old[f"{last}.W"][:, :10])  # the digits did train
    assert "held fixed" in new_meta["finetune"]["not_digit"]
    model = load_model(out)
    assert model.rejects and model.predict(sideways_ones(mnist_dir, 20)).probabilities.shape == (20, 10)
