"""`python -m tools.zoo`: pen digits drawn as canvas PNGs, and the table it prints
for the shipped zoo files (judged again, nothing trained)."""
import re

import numpy as np
import pytest

from model.inference import load_model
from tests.mnist_data import mnist
from tools import pendigits, zoo

PEN = pendigits.pendigits_path()
needs_pen = pytest.mark.skipif(PEN is None, reason="pen digits not found: ../shared/pendigits or PENDIGITS")


@needs_pen
def test_pen_digits_are_drawn_like_a_canvas_and_the_cnn_reads_them():
    sample = pendigits.stratified(pendigits.load(PEN), 60, seed=3)
    labels = [s["label"] for s in sample]
    assert len(sample) == 60 and all(labels.count(d) == 6 for d in range(10))
    canvas = pendigits.render(sample[0], np.random.default_rng(0))
    assert canvas.shape == (280, 280, 4) and canvas.dtype == np.uint8
    ink = canvas[..., 0] < 128
    assert 0.02 < ink.mean() < 0.4, "the strokes were not drawn at a person's size and width"
    digits, y = pendigits.digits_and_labels(sample)
    assert digits.shape == (60, 28, 28) and digits.dtype == np.uint8
    accuracy = float(np.mean(load_model().predict_proba(digits).argmax(1) == y))
    assert accuracy >= 0.85, f"the shipped CNN reads only {accuracy:.0%} of real pen digits"


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
