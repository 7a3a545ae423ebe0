"""Real pen writing (UNIPEN) for tests: found via PENDIGITS_DIR or ../shared/pendigits,
loaded once per session. Absent, the tests skip with the reason, except in CI
(CI=true), where skipping would hide a broken setup: there they fail instead."""
import functools
import os

import pytest

from tools import pendata

PEN_DIR = pendata.pen_dir_from_env()
REASON = "pen data not found: set PENDIGITS_DIR or place pendigits_dev/penchars_dev in ../shared/pendigits"


def require_pen():
    if PEN_DIR is None:
        if os.environ.get("CI") == "true":
            pytest.fail(REASON + " (CI=true: pen tests must run, not skip)")
        pytest.skip(REASON)


@functools.lru_cache(maxsize=2)
def _load(kind):
    return pendata.load(kind, PEN_DIR)


def pen(kind):
    """All samples of 'digits' or 'chars'."""
    require_pen()
    return _load(kind)
