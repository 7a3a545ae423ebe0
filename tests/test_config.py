"""Settings from the environment (`docker run -e ...`): each variable's accepted forms,
its default, and each refusal naming the variable and the value."""
import os
import re
from pathlib import Path

import pytest

from app import config
from app.config import SettingError, database_url, from_env, store_url


def test_nothing_set_gives_the_documented_defaults():
    settings = from_env({})
    assert {name: settings[name] for name in config.DEFAULTS} == config.DEFAULTS
    assert settings["MAX_BODY_BYTES"] == 5 * 1024 * 1024 and settings["MAX_IMAGE_PIXELS"] == 4096 * 4096
    assert settings["FEEDBACK"] is True and settings["FEEDBACK_KEEP_UPLOADS"] is False
    assert settings["FEEDBACK_MAX"] == 100_000 and settings["FEEDBACK_UPLOAD_MAX_BYTES"] == 256 * 1024
    assert settings["DATABASE_URL"] is None and settings["DATA_DIR"] == config.default_data_dir()


def test_an_empty_variable_counts_as_unset():
    """`-e FEEDBACK=` in a compose file must not be an error, nor switch anything."""
    names = ["MODEL_PATH", "MODELS", "MAX_BODY_BYTES", "MAX_IMAGE_PIXELS", "LOG_LEVEL", "FEEDBACK",
             "FEEDBACK_KEEP_UPLOADS", "FEEDBACK_MAX", "FEEDBACK_UPLOAD_MAX_BYTES", "DATA_DIR", "DATABASE_URL"]
    assert from_env({name: "" for name in names}) == from_env({})


@pytest.mark.parametrize("raw, value", [("1", True), ("on", True), (" TRUE ", True), ("Yes", True),
                                        ("0", False), ("off", False), ("False", False), (" no", False)])
def test_switches_read_any_common_spelling(raw, value):
    settings = from_env({"FEEDBACK": raw, "FEEDBACK_KEEP_UPLOADS": raw})
    assert settings["FEEDBACK"] is value and settings["FEEDBACK_KEEP_UPLOADS"] is value


def test_a_switch_that_is_neither_is_refused_by_name():
    with pytest.raises(SettingError, match=re.escape("FEEDBACK_KEEP_UPLOADS must be on or off "
                                                     "(also 1/0, true/false, yes/no), got 'sometimes'")):
        from_env({"FEEDBACK_KEEP_UPLOADS": "sometimes"})


@pytest.mark.parametrize("name", ["MAX_BODY_BYTES", "MAX_IMAGE_PIXELS", "FEEDBACK_MAX", "FEEDBACK_UPLOAD_MAX_BYTES"])
def test_sizes_are_positive_whole_numbers(name):
    assert from_env({name: "1"})[name] == 1 and from_env({name: " 2048 "})[name] == 2048
    for raw, message in (("0", f"{name} must be at least 1, got 0"), ("-3", f"{name} must be at least 1, got -3"),
                         ("1.5", f"{name} must be a whole number, got '1.5'"),
                         ("5MB", f"{name} must be a whole number, got '5MB'")):
        with pytest.raises(SettingError, match=re.escape(message)):
            from_env({name: raw})


def test_log_level_in_any_case_and_others_refused():
    for level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        assert from_env({"LOG_LEVEL": level.lower()})["LOG_LEVEL"] == level
        assert from_env({"LOG_LEVEL": level.title()})["LOG_LEVEL"] == level
    with pytest.raises(SettingError, match=re.escape("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or "
                                                     "CRITICAL, got 'VERBOSE'")):
        from_env({"LOG_LEVEL": "verbose"})


def test_model_settings_pass_through():
    settings = from_env({"MODEL_PATH": "/models/mine.npz", "MODELS": "cnn,linear"})
    assert settings["MODEL_PATH"] == "/models/mine.npz" and settings["MODELS"] == "cnn,linear"


@pytest.mark.parametrize("raw, url", [
    ("postgresql://u:p@db:5432/digits", "postgresql+psycopg://u:p@db:5432/digits"),
    ("postgres://u@db/digits", "postgresql+psycopg://u@db/digits"),          # Heroku's spelling
    ("PostgreSQL://u@db/digits", "postgresql+psycopg://u@db/digits"),
    (" postgresql+psycopg://u@db/digits\n", "postgresql+psycopg://u@db/digits"),
    ("sqlite:////srv/corrections.sqlite3", "sqlite:////srv/corrections.sqlite3"),
    ("postgresql://u:a://b@db/digits", "postgresql+psycopg://u:a://b@db/digits"),  # "://" in a password
])
def test_database_urls_are_read_for_psycopg_3(raw, url):
    assert database_url(raw) == url
    assert from_env({"DATABASE_URL": raw})["DATABASE_URL"] == url


@pytest.mark.parametrize("raw, scheme", [("mysql://u@h/db", "'mysql'"), ("db.example.org:5432", "'none'")])
def test_other_database_urls_are_refused_naming_the_scheme(raw, scheme):
    with pytest.raises(SettingError, match=re.escape(f"got a URL with scheme {scheme}")):
        database_url(raw)


def test_the_store_is_the_sqlite_file_in_data_dir_unless_a_database_is_named():
    expected = "sqlite:///" + os.path.join(os.path.abspath("some/dir"), config.SQLITE_FILENAME)
    assert store_url({"DATA_DIR": "some/dir", "DATABASE_URL": None}) == expected
    assert store_url({"DATA_DIR": "some/dir", "DATABASE_URL": "postgres://u@h/d"}) == "postgresql+psycopg://u@h/d"


def test_data_dir_is_the_checkout_s_data_folder_or_the_user_s_data_folder(monkeypatch, tmp_path):
    checkout = Path(config.__file__).resolve().parent.parent
    assert config.default_data_dir() == str(checkout / "data")
    # Installed (a wheel in site-packages): no pyproject.toml beside the package.
    monkeypatch.setattr(config, "__file__", str(tmp_path / "site-packages" / "app" / "config.py"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert config.default_data_dir() == os.path.join(tmp_path / "xdg", "digitdraw")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.default_data_dir() == os.path.join(tmp_path / "home", ".local", "share", "digitdraw")
