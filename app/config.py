"""Settings, read from environment variables so a container is configured with `-e`.

Debug mode is not a setting: the Werkzeug debugger executes code sent by any
client, so nothing here can turn it on (see `create_app`).
"""
import os
from pathlib import Path

from model.inference import DEFAULT_MODEL_PATH

MB = 1024 * 1024

# Defaults: a 5 MB upload holds any sensible photo of a digit; 16 megapixels
# (4096 x 4096) decode to 64 MB of RGBA at most, an amount a worker survives.
DEFAULTS = {
    "MODEL_PATH": DEFAULT_MODEL_PATH,
    "MAX_BODY_BYTES": 5 * MB,
    "MAX_IMAGE_PIXELS": 4096 * 4096,
    "LOG_LEVEL": "INFO",
    "MODELS": "",  # extra models by name, e.g. "cnn,linear,sigmoid-15" (see app/models.py)
}

# ---- corrections (POST /feedback): where they are stored and how many
# A corrected drawing takes about 1 KB (28x28 image plus a few fields), so the
# default cap bounds the store near 100 MB even with the upload kept; a canvas
# PNG of a digit is 5-20 KB (measured on tools/canvas_eval.py renders), far
# under the default bound for a kept upload.
CORRECTIONS_DEFAULTS = {
    "FEEDBACK": True,
    "DATA_DIR": None,             # filled in by default_data_dir()
    "DATABASE_URL": None,         # None: SQLite file in DATA_DIR
    "FEEDBACK_MAX": 100_000,
    "FEEDBACK_KEEP_UPLOADS": False,
    "FEEDBACK_UPLOAD_MAX_BYTES": 256 * 1024,
}
SQLITE_FILENAME = "corrections.sqlite3"
_ON = ("1", "on", "true", "yes")
_OFF = ("0", "off", "false", "no")


class SettingError(ValueError):
    """An environment variable with a value the app cannot use."""


def _positive_int(name, raw):
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise SettingError(f"{name} must be at least 1, got {value}")
    return value


def _switch(name, raw):
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise SettingError(f"{name} must be on or off (also 1/0, true/false, yes/no), got {raw!r}")


def default_data_dir():
    """`data/` in a source checkout (git-ignored; what `make run` uses), else the
    per-user data folder. The Docker image sets DATA_DIR to its volume."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return str(checkout / "data")
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "digitdraw")


def database_url(raw):
    """The SQLAlchemy URL for DATABASE_URL; PostgreSQL goes through psycopg 3."""
    url = raw.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if scheme in ("postgresql+psycopg", "sqlite"):
        return url
    raise SettingError(f"DATABASE_URL must be postgresql://user:password@host:port/dbname "
                       f"(or sqlite:///path/file.sqlite3), got a URL with scheme {scheme or 'none'!r}")


def corrections_from_env(environ):
    """The corrections settings; DATA_DIR/SQLite unless DATABASE_URL names PostgreSQL."""
    settings = dict(CORRECTIONS_DEFAULTS)
    if environ.get("FEEDBACK"):
        settings["FEEDBACK"] = _switch("FEEDBACK", environ["FEEDBACK"])
    if environ.get("FEEDBACK_KEEP_UPLOADS"):
        settings["FEEDBACK_KEEP_UPLOADS"] = _switch("FEEDBACK_KEEP_UPLOADS", environ["FEEDBACK_KEEP_UPLOADS"])
    for name in ("FEEDBACK_MAX", "FEEDBACK_UPLOAD_MAX_BYTES"):
        if environ.get(name):
            settings[name] = _positive_int(name, environ[name])
    settings["DATA_DIR"] = environ.get("DATA_DIR") or default_data_dir()
    if environ.get("DATABASE_URL"):
        settings["DATABASE_URL"] = database_url(environ["DATABASE_URL"])
    return settings


def store_url(settings):
    """Where corrections live: DATABASE_URL, or the SQLite file in DATA_DIR."""
    if settings.get("DATABASE_URL"):
        return database_url(settings["DATABASE_URL"])
    return "sqlite:///" + os.path.join(os.path.abspath(settings["DATA_DIR"]), SQLITE_FILENAME)


def from_env(environ=None):
    """Settings dict from `environ` (os.environ by default), defaults filled in."""
    environ = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    if environ.get("MODEL_PATH"):
        settings["MODEL_PATH"] = environ["MODEL_PATH"]
    if environ.get("MODELS"):
        settings["MODELS"] = environ["MODELS"]
    for name in ("MAX_BODY_BYTES", "MAX_IMAGE_PIXELS"):
        if environ.get(name):
            settings[name] = _positive_int(name, environ[name])
    if environ.get("LOG_LEVEL"):
        level = environ["LOG_LEVEL"].upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
        settings["LOG_LEVEL"] = level
    settings.update(corrections_from_env(environ))
    return settings
