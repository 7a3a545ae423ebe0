"""Real MNIST for tests: found via MNIST_DIR or ../shared/mnist; loaded once per session.

Where the files are absent the tests skip with the reason, except in CI (CI=true),
where skipping would hide a broken setup: there they fail instead. Every test
that needs something the machine may lack (MNIST, the trained model, an
optional package) goes through `skip_or_fail`, so CI never skips silently.
"""
import functools
import importlib
import os

import pytest

from model.datasets import load_mnist, mnist_dir_from_env

MNIST_DIR = mnist_dir_from_env()
REASON = "real MNIST not found: set MNIST_DIR or place the four IDX files in ../shared/mnist"


def in_ci():
    return os.environ.get("CI", "").lower() in ("true", "1")


def skip_or_fail(reason):
    """Skip with `reason`; under CI=true fail instead, since there it means a broken setup."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run, not skip)")
    pytest.skip(reason)


def require_mnist():
    if MNIST_DIR is None:
        skip_or_fail(REASON)


def require_module(name, reason):
    """Import an optional package (e.g. matplotlib from the test extra) or skip_or_fail."""
    try:
        return importlib.import_module(name)
    except ImportError:
        skip_or_fail(reason)


def is_placeholder(model):
    """The random placeholder model (no recorded accuracy), not the trained one."""
    return model.identity["name"].startswith("placeholder") or model.meta.get("test_accuracy") is None


def require_trained(model):
    """Recognition-quality tests need the trained model, not the random placeholder."""
    if is_placeholder(model):
        skip_or_fail("the shipped model is the random placeholder; recognition needs the trained model")
    return model


@functools.lru_cache(maxsize=1)
def _load():
    return load_mnist(data_dir=MNIST_DIR)


def mnist():
    require_mnist()
    return _load()
