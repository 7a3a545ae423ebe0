"""`python -m model.evaluate` on a tiny saved model and a tiny generated IDX test set.

The labels are built so that a known number of predictions are right: the
printed accuracy, per-class rows and confusion matrix are checked against
counts made here with plain loops over predict_proba.
"""
import subprocess
import sys

import numpy as np
import pytest

from model import datasets, evaluate, idx, modelfile
from model.inference import load_model
from tests.mnist_data import require_mnist, require_module

N_TEST, N_RIGHT = 60, 41
TINY_INPUT = {"shape": [28, 28, 1], "layout": "NHWC", "scale": 255.0, "mean": 0.1307, "std": 0.3081}
HISTORY = [{"epoch": e, "loss": 2.0 / e, "train_accuracy": 0.5 + 0.1 * e, "val_accuracy": 0.45 + 0.1 * e,
            "seconds": 1.5} for e in (1, 2, 3)]


def save_tiny_model(path, history=None, seed=0):
    rng = np.random.default_rng(seed)
    meta = {"name": "tiny-test", "architecture": [{"type": "flatten"}, {"type": "dense", "units": 10}],
            "input": TINY_INPUT}
    if history is not None:
        meta["history"] = history
    params = {"1.W": rng.normal(0, 0.05, (784, 10)).astype(np.float32),
              "1.b": rng.normal(0, 0.1, 10).astype(np.float32)}
    modelfile.save(path, meta, params)
    return path


@pytest.fixture
def model_path(tmp_path):
    return save_tiny_model(tmp_path / "tiny.npz")


@pytest.fixture
def data_dir(tmp_path, model_path):
    """Test images plus labels: the model's own prediction for the first N_RIGHT, a wrong digit after."""
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8)
    predicted = load_model(model_path).predict_proba(images).argmax(axis=1)
    labels = predicted.copy()
    labels[N_RIGHT:] = (predicted[N_RIGHT:] + rng.integers(1, 10, N_TEST - N_RIGHT)) % 10
    directory = tmp_path / "mnist"
    directory.mkdir()
    idx.write_idx(directory / "t10k-images-idx3-ubyte.gz", images)
    idx.write_idx(directory / "t10k-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return directory


def expected_tables(model_path, data_dir):
    images = idx.read_images(data_dir / "t10k-images-idx3-ubyte.gz")
    labels = idx.read_labels(data_dir / "t10k-labels-idx1-ubyte.gz")
    predicted = load_model(model_path).predict_proba(images).argmax(axis=1)
    confusion = [[0] * 10 for _ in range(10)]
    for true, guess in zip(labels, predicted):
        confusion[true][guess] += 1
    return labels, predicted, confusion


def parse_section(out, title, rows=10):
    lines = out.splitlines()
    start = lines.index(title) + 2  # skip the title and the column header
    return [[int(v) if v.isdigit() else v for v in line.split()] for line in lines[start:start + rows]]


def run(argv, capsys):
    code = evaluate.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_accuracy_per_class_and_confusion(model_path, data_dir, capsys):
    code, out, err = run([model_path, "--data", data_dir], capsys)
    assert code == 0, err
    assert f"test accuracy: {N_RIGHT / N_TEST:.4f} ({N_RIGHT}/{N_TEST})" in out.splitlines()
    assert "NOT the official MNIST test set" in out
    labels, predicted, confusion = expected_tables(model_path, data_dir)
    assert sum(confusion[d][d] for d in range(10)) == N_RIGHT
    printed_confusion = parse_section(out, "confusion matrix (rows: true digit, columns: predicted digit):")
    assert printed_confusion == [[digit] + confusion[digit] for digit in range(10)]
    for digit, count, correct, accuracy in parse_section(out, "per-class accuracy:"):
        assert count == int((labels == digit).sum())
        assert correct == int(((labels == digit) & (predicted == digit)).sum())
        assert accuracy == (f"{correct / count:.4f}" if count else "n/a")


def test_confusion_table_columns_are_aligned(model_path, data_dir, capsys):
    _, out, _ = run([model_path, "--data", data_dir], capsys)
    lines = out.splitlines()
    start = lines.index("confusion matrix (rows: true digit, columns: predicted digit):") + 1
    table = lines[start:start + 11]
    assert len({len(line) for line in table}) == 1
    assert table[0].split() == ["true\\pred"] + [str(d) for d in range(10)]


def test_batch_size_does_not_change_the_numbers(model_path, data_dir, capsys):
    _, whole, _ = run([model_path, "--data", data_dir, "--batch-size", "1000"], capsys)
    _, batched, _ = run([model_path, "--data", data_dir, "--batch-size", "7"], capsys)
    assert whole == batched


def test_module_entry_point(model_path, data_dir):
    result = subprocess.run([sys.executable, "-m", "model.evaluate", str(model_path), "--data", str(data_dir)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"test accuracy: {N_RIGHT / N_TEST:.4f} ({N_RIGHT}/{N_TEST})" in result.stdout


def test_recorded_accuracy_is_shown(tmp_path, data_dir, capsys):
    meta, params = modelfile.load(save_tiny_model(tmp_path / "tiny.npz"))
    meta["test_accuracy"] = 0.25
    modelfile.save(tmp_path / "with_accuracy.npz", meta, params)
    _, out, _ = run([tmp_path / "with_accuracy.npz", "--data", data_dir], capsys)
    assert "recorded in the model file: 0.2500" in out.splitlines()


def test_bad_model_file_is_a_clear_error(tmp_path, data_dir, capsys):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    code, out, err = run([broken, "--data", data_dir], capsys)
    assert code == 1 and out == ""
    assert err.startswith(f"error: {broken}: unreadable or truncated .npz")
    assert "Traceback" not in err


def test_missing_data_is_a_clear_error(model_path, tmp_path, capsys):
    code, _, err = run([model_path, "--data", tmp_path / "empty"], capsys)
    assert code == 1
    assert err.strip() == f"error: {tmp_path / 'empty'}: MNIST directory not found"


def test_corrupt_data_is_a_clear_error(model_path, data_dir, capsys):
    labels = data_dir / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-12])
    code, _, err = run([model_path, "--data", data_dir], capsys)
    assert code == 1
    assert err.startswith("error: t10k-labels-idx1-ubyte.gz: ")


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_batch_size_must_be_positive(model_path, data_dir, capsys, value):
    with pytest.raises(SystemExit) as info:
        evaluate.main([str(model_path), "--data", str(data_dir), "--batch-size", value])
    assert info.value.code == 2
    assert "--batch-size" in capsys.readouterr().err


def test_plot_without_matplotlib_says_how_to_install(model_path, data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    code, out, err = run([model_path, "--data", data_dir, "--plot", tmp_path / "plots"], capsys)
    assert code != 0
    assert "pip install '.[plot]'" in err
    assert not (tmp_path / "plots").exists()


def test_without_plot_matplotlib_is_not_needed(model_path, data_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, _ = run([model_path, "--data", data_dir], capsys)
    assert code == 0 and "test accuracy:" in out


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from the IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_plots_are_written(tmp_path, data_dir, capsys):
    require_module("matplotlib", "matplotlib (the 'plot' extra) is not installed")
    model = save_tiny_model(tmp_path / "with_history.npz", history=HISTORY)
    plots = tmp_path / "plots"
    code, out, err = run([model, "--data", data_dir, "--plot", plots], capsys)
    assert code == 0, err
    names = ["confident_errors.png", "confusion_matrix.png", "training_curves.png"]
    assert sorted(p.name for p in plots.iterdir()) == names
    for name in names:
        width, height = png_size(plots / name)
        assert width > 100 and height > 100
        assert f"wrote {plots / name}" in out


def test_plots_skip_missing_history_and_errors(model_path, tmp_path, capsys):
    require_module("matplotlib", "matplotlib (the 'plot' extra) is not installed")
    images = np.random.default_rng(9).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    perfect = tmp_path / "perfect"
    perfect.mkdir()
    idx.write_idx(perfect / "t10k-images-idx3-ubyte.gz", images)
    labels = load_model(model_path).predict_proba(images).argmax(axis=1).astype(np.uint8)
    idx.write_idx(perfect / "t10k-labels-idx1-ubyte.gz", labels)
    plots = tmp_path / "plots"
    code, out, _ = run([model_path, "--data", perfect, "--plot", plots], capsys)
    assert code == 0
    assert "test accuracy: 1.0000 (8/8)" in out
    assert "no training history in the model file; skipping training_curves.png" in out
    assert "no misclassified test digits; skipping confident_errors.png" in out
    assert sorted(p.name for p in plots.iterdir()) == ["confusion_matrix.png"]


def test_most_confident_errors_order():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95], [0.7, 0.3]], np.float32)
    labels = np.array([0, 0, 0, 0, 1])
    # wrong: 1 (0.8), 2 (0.6), 3 (0.95), 4 (0.7); right: 0
    assert evaluate.most_confident_errors(probabilities, labels, limit=3).tolist() == [3, 1, 4]


@pytest.mark.mnist
def test_real_mnist_test_set(model_path, capsys):
    require_mnist()
    mnist = datasets.mnist_dir_from_env()
    code, out, err = run([model_path, "--data", mnist], capsys)
    assert code == 0, err
    test = datasets.load_mnist(mnist, splits=("test",))
    predicted = load_model(model_path).predict_proba(test["test_images"]).argmax(axis=1)
    right = int((predicted == test["test_labels"]).sum())
    assert f"test accuracy: {right / 10000:.4f} ({right}/10000)" in out.splitlines()
    assert f"data: {mnist} (official MNIST test set, 10000 images)" in out.splitlines()
