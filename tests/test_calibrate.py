"""The not-a-digit threshold: set by the trainer at the end of a run, and again on the
same weights by python -m model.calibrate."""
import numpy as np
import pytest

from model import calibrate, modelfile, rejection
from model import train as trainer
from model.datasets import MnistError, load_calibration
from model.inference import Model, load_model
from model.network import MLP, Network
from model.train import NORMALIZATION, with_classes
from tests.mnist_data import mnist
from tools import pen_dataset


def write_model(path, classes=11, threshold=0.5):
    architecture = with_classes(MLP, classes)
    meta = {"name": "t", "architecture": architecture, "input": NORMALIZATION}
    if classes == 11:
        meta["not_digit"] = {"class": 10, "threshold": threshold}
    modelfile.save(path, meta, Network(architecture, seed=4).state_dict())
    return path


def write_calibration(path, n=400, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.concatenate([rng.integers(0, 10, n - 100), np.full(100, 10)]).astype(np.uint8)
    variants = np.array(["default", "small"] * (n // 2))
    pen_dataset.save(str(path), images, labels, np.array(["x"] * n), np.array(["tos"] * n), {"seed": seed},
                     variants)
    return images, labels, variants


def test_recalibration_moves_only_the_threshold(tmp_path, capsys):
    source = write_model(tmp_path / "m.npz", threshold=0.5)
    images, labels, variants = write_calibration(tmp_path / "cal.npz")
    out = tmp_path / "out.npz"
    result = calibrate.main([str(source), "--calibrate", str(tmp_path / "cal.npz"), "--out", str(out),
                             "--digit-flag-rate", "0.05"])
    before, after = modelfile.load(source), modelfile.load(out)
    assert after[0]["weights_sha256"] == before[0]["weights_sha256"]
    for name, value in before[1].items():
        np.testing.assert_array_equal(after[1][name], value)
    scores = rejection.not_digit_share(Model(*before).logits(images))
    expected = rejection.calibrate(scores, labels, 0.05, groups=variants)
    assert result["threshold"] == expected["threshold"] == after[0]["not_digit"]["threshold"]
    assert set(result["digits_flagged_by_variant"]) == {"default", "small"}
    assert max(result["digits_flagged_by_variant"].values()) <= 0.05 + 1e-9
    model = load_model(out)
    digit_scores = model.predict(images[labels < 10]).not_digit
    assert np.mean(digit_scores >= result["threshold"]) == pytest.approx(result["digits_flagged"])
    assert "threshold 0.5 ->" in capsys.readouterr().out


def test_a_model_without_the_eleventh_output_is_refused(tmp_path):
    source = write_model(tmp_path / "m10.npz", classes=10)
    write_calibration(tmp_path / "cal.npz")
    with pytest.raises(SystemExit, match="no 'not a digit' output"):
        calibrate.recalibrate(str(source), str(tmp_path / "cal.npz"), str(tmp_path / "out.npz"))
    assert not (tmp_path / "out.npz").exists()


def test_an_older_calibration_file_without_variants_is_used_on_the_mix_and_said(tmp_path, capsys):
    images = np.zeros((4, 28, 28), np.uint8)
    labels = np.array([1, 2, 10, 10], np.uint8)
    pen_dataset.save(str(tmp_path / "old.npz"), images, labels, np.array(["x"] * 4), np.array(["tos"] * 4), {})
    _, _, variants, _ = load_calibration(str(tmp_path / "old.npz"))
    assert variants is None
    assert "names no canvas variants" in capsys.readouterr().out
    pen_dataset.save(str(tmp_path / "bad.npz"), images, labels, np.array(["x"] * 4), np.array(["tos"] * 4), {},
                     np.array(["default", "small"]))
    with pytest.raises(MnistError, match="one variant per image"):
        load_calibration(str(tmp_path / "bad.npz"))


@pytest.mark.mnist
def test_the_trainer_sets_the_threshold_per_variant_as_recalibration_would(tmp_path):
    """A run with an eleventh class and a calibration set stores the same threshold that
    model.calibrate computes on the weights it wrote: one mechanism, two entry points."""
    data = mnist()
    write_calibration(tmp_path / "cal.npz", n=300)
    out = tmp_path / "m.npz"
    meta = trainer.main(["--arch", "mlp", "--epochs", "1", "--average-epochs", "1", "--limit", "1000",
                         "--no-augment", "--data", data["source"], "--extra", str(tmp_path / "cal.npz"),
                         "--calibrate", str(tmp_path / "cal.npz"), "--out", str(out)])
    stored = meta["not_digit"]
    assert set(stored["digits_flagged_by_variant"]) == {"default", "small"}
    assert stored["calibration_set"]["file"] == "cal.npz"
    again = calibrate.not_digit_meta(load_model(out).logits, str(tmp_path / "cal.npz"))
    assert again["threshold"] == pytest.approx(stored["threshold"], abs=1e-5)
    assert load_model(out).meta["not_digit"]["threshold"] == stored["threshold"]


def test_the_command_and_calibration_file_are_recorded_and_the_result_printed(tmp_path, capsys):
    folder = tmp_path / "a folder with spaces"
    folder.mkdir()
    source = write_model(folder / "m.npz", threshold=0.5)
    write_calibration(folder / "cal.npz")
    out = folder / "out.npz"
    argv = [str(source), "--calibrate", str(folder / "cal.npz"), "--out", str(out)]
    result = calibrate.main(argv)
    stored = modelfile.load(out)[0]["not_digit"]
    assert stored["command"] == "python -m model.calibrate " + " ".join(f"'{a}'" if " " in a else a for a in argv)
    assert stored["calibration_set"]["file"] == "cal.npz"
    assert stored["calibration_set"]["seed"] == 0  # the calibration file's own meta rides along
    # Without --digit-flag-rate the rate is the trainer's.
    again = rejection.calibrate(*_scores_and_labels(source, folder / "cal.npz"), rejection.DIGIT_FLAG_RATE,
                                groups=load_calibration(str(folder / "cal.npz"))[2])
    assert result["threshold"] == again["threshold"]
    by_variant = result["digits_flagged_by_variant"]
    assert capsys.readouterr().out == (
        f"threshold 0.5 -> {result['threshold']:.4f}: on the calibration writers {result['digits_flagged']:.2%} "
        f"of digits (default {by_variant['default']:.2%}, small {by_variant['small']:.2%}) and "
        f"{result['non_digits_flagged']:.2%} of non-digits flagged; wrote {out}\n")


def _scores_and_labels(model_path, calibration_path):
    images, labels, _, _ = load_calibration(str(calibration_path))
    return rejection.not_digit_share(Model(*modelfile.load(model_path)).logits(images)), labels


def test_a_direct_call_records_no_command(tmp_path):
    source = write_model(tmp_path / "m.npz")
    write_calibration(tmp_path / "cal.npz")
    result = calibrate.recalibrate(str(source), str(tmp_path / "cal.npz"), str(tmp_path / "out.npz"))
    assert "command" not in result and "command" not in modelfile.load(tmp_path / "out.npz")[0]["not_digit"]


def test_the_command_line_refuses_a_ten_output_model_and_missing_options(tmp_path, capsys):
    source = write_model(tmp_path / "m10.npz", classes=10)
    write_calibration(tmp_path / "cal.npz")
    with pytest.raises(SystemExit, match="has no 'not a digit' output"):
        calibrate.main([str(source), "--calibrate", str(tmp_path / "cal.npz"), "--out", str(tmp_path / "o.npz")])
    for missing in (["--out", "o.npz"], ["--calibrate", "cal.npz"]):
        with pytest.raises(SystemExit) as refused:
            calibrate.main([str(source), *missing])
        assert refused.value.code == 2
        assert "the following arguments are required: --" in capsys.readouterr().err


def test_help_names_the_command_what_it_does_and_the_default_rate(capsys):
    with pytest.raises(SystemExit):
        calibrate.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: python -m model.calibrate ")
    assert calibrate.__doc__.splitlines()[0] in text
    assert "--calibrate NPZ" in text and f"(default: {rejection.DIGIT_FLAG_RATE})" in text


def test_run_as_a_program_the_command_line_is_read_from_sys_argv(tmp_path, monkeypatch):
    source = write_model(tmp_path / "m.npz")
    write_calibration(tmp_path / "cal.npz")
    args = [str(source), "--calibrate", str(tmp_path / "cal.npz"), "--out", str(tmp_path / "o.npz")]
    monkeypatch.setattr("sys.argv", ["calibrate.py", *args])
    assert calibrate.main()["command"] == "python -m model.calibrate " + " ".join(args)
