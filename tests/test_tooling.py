"""What a newcomer runs first: make help, make run's address, make train/promote,
the trainer's --help, and the packaging metadata."""
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from model import modelfile
from model import train as trainer
from tests.test_gunicorn import _free_port, load_config

ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = ROOT / "Makefile"
VENV = Path(sys.prefix)  # the virtualenv running the tests: make must not rebuild it


def make(*args, check=True, timeout=120, **env):
    """`make ARGS` in the checkout, against this interpreter's venv, never reinstalling it."""
    command = ["make", "--no-print-directory", f"VENV={VENV}", "-o", f"{VENV}/.installed", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def makefile_targets():
    """Every rule name written as `name:` at the start of a line (no variables, no files)."""
    return sorted(set(re.findall(r"^([a-z][a-z-]*):(?!=)", MAKEFILE.read_text(), re.MULTILINE)))


def test_make_help_lists_every_target():
    targets = makefile_targets()
    assert {"run", "test", "test-fast", "lint", "train", "promote", "soak", "clean"} <= set(targets)
    listed = set(re.findall(r"^make ([a-z-]+)", make("help").stdout, re.MULTILINE))
    assert listed == set(targets) - {"help"}


def test_phony_declares_every_target():
    phony = set(re.search(r"^\.PHONY:(.*)$", MAKEFILE.read_text(), re.MULTILINE)[1].split())
    assert phony == set(makefile_targets())


def trainer_stages(target):
    """--flag value pairs of each `python -m model.train` line of a target, as `make -n` would run them."""
    lines = make("-n", target).stdout.replace("\\\n", " ").splitlines()
    # `make train` may first draw the pen data (tools.pen_dataset): read only the trainer's lines
    stages = []
    for line in (line for line in lines if "model.train" in line):
        flags, key = {}, None
        for word in shlex.split(line):
            if word.startswith("--"):
                key = word[2:].replace("-", "_")
                flags.setdefault(key, True)
            elif key == "extra":  # repeated: every extra image file, in order
                flags[key] = (flags[key] if isinstance(flags[key], list) else []) + [word]
                key = None
            elif key:
                flags[key], key = word, None
        stages.append(flags)
    return stages


def test_make_train_writes_a_new_file_not_the_shipped_model():
    stages = trainer_stages("train")
    assert len(stages) == 3 and stages[-1]["out"] == "runs/mnist_cnn.npz"
    for before, after in zip(stages, stages[1:]):
        assert after["init"] == before["out"] != after["out"]  # each stage starts from the one before
    assert "model/weights" not in make("-n", "train").stdout
    assert make("-n", "train", "TRAIN_OUT=elsewhere.npz").stdout.count("--out elsewhere.npz") == 1


def test_trainer_defaults_are_the_make_train_recipe():
    """`python -m model.train` with no options trains what `make train`'s first stage trains."""
    defaults = vars(trainer.parse_args([]))
    first = trainer_stages("train")[0]
    for name, value in first.items():
        if name in ("data", "extra", "calibrate", "out"):
            continue  # where the files are, not the recipe
        assert str(defaults[name]) == value or float(defaults[name]) == float(value), name


def test_make_train_later_stages_only_weigh_mnist_average_and_add_chevrons():
    """Stages 2 and 3 change what they must (start, schedule, MNIST's weight) and train on
    stage 1's data; stage 3 adds the drawn '>' and '<' and nothing else."""
    first, second, third = trainer_stages("train")
    for stage in (second, third):
        assert stage["epochs"] == "0" and int(stage["average_epochs"]) > 0 and int(stage["mnist_repeat"]) > 1
        for name in ("arch", "batch_size", "seed", "data", "calibrate", "average_lr"):
            assert stage[name] == first[name], name
    assert second["extra"] == first["extra"] == ["runs/pen_train.npz", "runs/pen_styles.npz"]
    assert third["extra"] == first["extra"] + ["runs/pen_chevrons.npz"]
    assert {k: v for k, v in third.items() if k not in ("init", "extra", "out")} == {
        k: v for k, v in second.items() if k not in ("init", "extra", "out")}


def test_trainer_help_explains_every_option_and_shows_defaults():
    done = subprocess.run([sys.executable, "-m", "model.train", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    text = " ".join(done.stdout.split())
    for shown in ("(default: 12)", "(default: 128)", "(default: 0.002)", "(default: runs/mnist_cnn.npz)",
                  "(default: 0)", "(default: adam)"):
        assert shown in text
    assert "(default: None)" not in text and "(default: False)" not in text
    for action in trainer.build_parser()._actions:
        assert action.help and len(action.help) > 10, f"{action.option_strings} has no help text"


def tiny_model(path):
    architecture = [{"type": "flatten"}, {"type": "dense", "units": 10}]
    rng = np.random.default_rng(0)
    params = {"1.W": rng.normal(size=(784, 10)).astype(np.float32), "1.b": np.zeros(10, np.float32)}
    modelfile.save(path, {"name": "tiny", "architecture": architecture,
                          "input": {"shape": [28, 28, 1], "scale": 255.0}}, params)
    return path


def test_make_promote_copies_a_good_model_and_refuses_a_broken_one(tmp_path):
    shipped = tmp_path / "shipped.npz"
    shipped.write_bytes(b"the old model")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 truncated")
    done = make("promote", f"TRAIN_OUT={broken}", f"SHIPPED={shipped}", check=False)
    assert done.returncode != 0 and "broken.npz" in done.stderr
    assert shipped.read_bytes() == b"the old model"

    good = tiny_model(tmp_path / "new.npz")
    done = make("promote", f"TRAIN_OUT={good}", f"SHIPPED={shipped}")
    assert shipped.read_bytes() == good.read_bytes()
    assert "tiny" in done.stdout


# ---------------------------------------------------------------- make run's address

def test_host_setting_chooses_the_interface():
    assert load_config(HOST="127.0.0.1", PORT="9123")["config"]["bind"] == "127.0.0.1:9123"
    assert load_config(HOST="")["config"]["bind"] == "0.0.0.0:8000"  # the image's default


def listening_addresses(port):
    """Local IPv4 addresses with a socket in LISTEN state on `port` (from /proc/net/tcp)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.append(".".join(str(b) for b in bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.slow
def test_make_run_listens_on_localhost_only():
    port = _free_port()
    server = subprocess.Popen(["make", "--no-print-directory", f"VENV={VENV}", "-o", f"{VENV}/.installed",
                               "run", f"PORT={port}"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env={**os.environ, "WEB_CONCURRENCY": "1"},
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read().decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    assert response.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "make run did not answer on 127.0.0.1"
                time.sleep(0.3)
        assert listening_addresses(port) == ["127.0.0.1"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


# ---------------------------------------------------------------- packaging

def test_license_is_an_spdx_string_with_its_file():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    for pattern in project["license-files"]:
        matches = list(ROOT.glob(pattern))
        assert matches, pattern
        assert all("MIT License" in path.read_text() for path in matches)


def test_plots_and_training_runs_are_git_ignored():
    done = subprocess.run(["git", "check-ignore", "plots/confusion.png", "runs/mnist_cnn.npz"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.stdout.split() == ["plots/confusion.png", "runs/mnist_cnn.npz"]
