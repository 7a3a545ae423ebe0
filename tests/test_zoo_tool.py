"""`python -m tools.zoo`: pen digits drawn as canvas PNGs, and the table it prints
for the shipped zoo files (judged again, nothing trained)."""
import re

import numpy as np
import pytest

from model.inference import load_model
from tests.mnist_data import mnist
from tests.pen_data import require_pen
from tools import pen_eval, pendata, zoo


def test_pen_column_reads_held_out_writers_through_the_api_path():
    """The zoo's pen digits: only held-out institutions, the same number per digit,
    28x28 inputs as /predict makes them, and the shipped CNN reads them."""
    require_pen()
    digits, labels = zoo.pen_digits(pendata.pen_dir_from_env(), 60, seed=3)
    assert digits.shape == (60, 28, 28) and digits.dtype == np.uint8
    assert all(np.sum(labels == d) == 6 for d in range(10))
    ink = (digits > 0).mean(axis=(1, 2))
    assert np.all((ink > 0.03) & (ink < 0.6)), "the strokes were not drawn and centred as a canvas would"
    accuracy = float(np.mean(load_model().predict_proba(digits).argmax(1) == labels))
    assert accuracy >= 0.85, f"the shipped CNN reads only {accuracy:.0%} of held-out pen digits"


def test_pen_sample_comes_only_from_the_held_out_institutions(monkeypatch):
    require_pen()
    seen = []
    real = pendata.stratified

    def spy(samples, per_group, key, seed=0):
        seen.extend(samples)
        return real(samples, per_group, key, seed)

    monkeypatch.setattr(pendata, "stratified", spy)
    zoo.pen_digits(pendata.pen_dir_from_env(), 20)
    assert seen and {s["inst"] for s in seen} <= set(pendata.HOLDOUT)


def test_by_default_the_pen_column_reads_every_held_out_digit_as_make_eval_pen_does(monkeypatch):
    """All of gmd and app, in the data set's order, drawn with pen_eval's seeds in
    the default variant: the same inputs, so the same accuracy, as make eval-pen."""
    require_pen()
    pen_dir = pendata.pen_dir_from_env()
    everything = zoo.pen_samples(pen_dir)
    held_out = [s["id"] for s in pendata.load("digits", pen_dir) if s["inst"] in pendata.HOLDOUT]
    assert [s["id"] for s in everything] == held_out and len(held_out) > 1000
    first = everything[:30]
    monkeypatch.setattr(zoo, "pen_samples", lambda *args, **kwargs: first)
    digits, labels = zoo.pen_digits(pen_dir)
    model = load_model()
    judged = pen_eval.evaluate_digits(model, first, ["default"], seed=0)["variants"]["default"]
    np.testing.assert_array_equal(digits, judged["inputs"])
    assert zoo.pen_accuracy(model, (digits, labels)) == float(np.mean(judged["answers"] == labels))


def test_every_recipe_is_a_valid_trainer_command():
    from model import train as trainer
    for recipe in zoo.RECIPES:
        args = trainer.parse_args(recipe.argv("/data", "/tmp/x.npz"))
        assert args.name == recipe.name and args.val_split == 0 and args.no_augment
        assert args.optimizer == "adam" or (args.momentum == 0 and args.schedule == "constant")


@pytest.mark.mnist
def test_eval_only_prints_one_row_per_model_with_the_measured_accuracy(capsys):
    mnist()  # skips or fails clearly without MNIST
    assert zoo.main(["--eval-only", "--only", "linear,sigmoid-15", "--pen-n", "0"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split("|")[1].strip() for r in rows] == ["linear", "sigmoid-15"]
    for row, name in zip(rows, ("linear", "sigmoid-15")):
        cells = [c.strip() for c in row.split("|")[1:-1]]
        model = load_model(zoo.zoo_path(name))
        assert cells[6] == f"{model.meta['test_accuracy']:.2%}"  # the file's own test accuracy, reproduced
        assert int(cells[2].replace(",", "")) == sum(a.size for a in model._params.values())
        assert re.fullmatch(r"\d+\.\d{3} ms", cells[8])
        assert cells[7] == "-"  # no pen digits asked for


def test_unknown_zoo_names_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as excinfo:
        zoo.main(["--only", "resnet", "--eval-only"])
    assert excinfo.value.code == 2
    assert "unknown zoo name(s) resnet" in capsys.readouterr().err
