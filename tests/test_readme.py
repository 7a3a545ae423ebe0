"""The README tells the truth: its sample answer has the shape of a real one and
names the shipped model, its commands exist, its Settings table covers every
setting the code reads, and its links to this repository's pages resolve."""
import re
from pathlib import Path

import pytest

from model.inference import load_model
from tools import readme_sample

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# Pages other branches are adding; linked from the README's "More" list ahead of them.
PAGES_ON_THEIR_WAY = {"docs/api.md", "docs/deployment.md", "docs/benchmarks.md", "docs/numbers.md",
                      "docs/corrections.md", "docs/zoo.md"}


def shape(value):
    """A value's JSON structure: types, dict keys and list lengths, not the numbers."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


@pytest.fixture(scope="module")
def sample():
    block = readme_sample.readme_block(README)
    assert block is not None, "README.md has no <!-- sample-response --> block"
    return block


def test_sample_response_has_the_keys_and_types_of_a_real_answer(sample):
    real = readme_sample.live_answer()
    assert shape(sample) == shape(real)
    assert list(sample) == list(real)  # same order as the API writes them


def test_sample_response_is_a_real_answer_of_the_shipped_model(sample):
    identity = load_model().identity
    assert sample["model"] == identity, "regenerate it: python -m tools.readme_sample --write"
    real = readme_sample.live_answer()
    assert sample["digit"] == real["digit"]
    assert sample["probabilities"] == pytest.approx(real["probabilities"], abs=1e-6)
    assert abs(sum(sample["probabilities"]) - 1) < 1e-4


def test_shape_sees_a_wrong_type():
    """The comparison above would notice a probability shown as a string or a missing key."""
    answer = {"digit": 1, "probabilities": [0.5, 0.5], "model": {"sha256": "ab"}}
    assert shape(answer) != shape({**answer, "probabilities": ["0.5", 0.5]})
    assert shape(answer) != shape({"digit": 1, "probabilities": [0.5, 0.5], "model": {}})


def test_every_make_command_in_the_readme_exists():
    targets = set(re.findall(r"^([a-z][a-z-]*):(?!=)", (ROOT / "Makefile").read_text(), re.MULTILINE))
    mentioned = set(re.findall(r"`make ([a-z-]+)", README)) | set(re.findall(r"^make ([a-z-]+)", README, re.M))
    assert mentioned >= {"run", "test", "help", "train", "promote", "lint"}
    assert mentioned <= targets, mentioned - targets


def test_quick_start_opens_with_make_run_and_make_test():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make \w+)", quick, re.MULTILINE)
    assert commands[:2] == ["make run", "make test"]
    assert "127.0.0.1" in quick and "HOST=0.0.0.0 make run" in quick


# Upper-case strings in those files that are not settings a person sets.
NOT_SETTINGS = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",  # pinned for the workers
                "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}  # LOG_LEVEL's values


def settings_read_by_the_code():
    """Every upper-case quoted name in the two files that read the environment."""
    names = set()
    for path in (ROOT / "app" / "config.py", ROOT / "gunicorn.conf.py"):
        names |= set(re.findall(r"[\"']([A-Z][A-Z_]{2,})[\"']", path.read_text()))
    return names - NOT_SETTINGS


def test_one_settings_table_covering_every_setting():
    assert README.count("## Settings") == 1
    table = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([A-Z_]+)`", table, re.MULTILINE)) | set(re.findall(r"\(or `([A-Z_]+)`\)", table))
    read = settings_read_by_the_code()
    assert {"HOST", "PORT", "MODEL_PATH", "WEB_CONCURRENCY", "WORKERS"} <= read
    assert read <= listed, f"settings missing from the README table: {sorted(read - listed)}"


def test_local_links_resolve():
    links = set(re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)(?:#[\w-]+)?\)", README))
    assert {"docs/model.md", "docs/preprocessing.md", "docs/docker.md"} <= links
    missing = {link for link in links if not (ROOT / link).is_file()} - PAGES_ON_THEIR_WAY
    assert not missing
    for page in ROOT.glob("docs/*.md"):
        assert "](../README.md)" in page.read_text(), f"{page.name} does not link back to the README"
