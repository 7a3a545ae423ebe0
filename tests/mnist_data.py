"""Real MNIST for tests: found via MNIST_DIR or ../shared/mnist; loaded once per session.

Where the files are absent the tests skip with the reason, except in CI (CI=true),
where skipping would hide a broken setup: there they fail instead.
"""
import functools
import os

import pytest

from model.datasets import load_mnist, mnist_dir_from_env

MNIST_DIR = mnist_dir_from_env()
REASON = "real MNIST not found: set MNIST_DIR or place the four IDX files in ../shared/mnist"


def require_mnist():
    if MNIST_DIR is None:
        if os.environ.get("CI") == "true":
            pytest.fail(REASON + " (CI=true: MNIST tests must run, not skip)")
        pytest.skip(REASON)


@functools.lru_cache(maxsize=1)
def _load():
    return load_mnist(data_dir=MNIST_DIR)


def mnist():
    require_mnist()
    return _load()
