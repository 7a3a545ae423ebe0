"""pytest plugin for `make mutate`: MUTATE_TESTS="tests/a.py tests/b.py::test_x" keeps only
those tests, so each module is mutation-tested against its own fast tests, not the suite."""
import os


def pytest_collection_modifyitems(config, items):
    wanted = os.environ.get("MUTATE_TESTS", "").split()
    if not wanted:
        return
    keep, drop = [], []
    for item in items:
        (keep if any(item.nodeid == w or item.nodeid.startswith(w.rstrip(":") + "::") or
                     item.nodeid.startswith(w + "[") for w in wanted) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
