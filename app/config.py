"""Settings, read from environment variables so a container is configured with `-e`.

Debug mode is not a setting: the Werkzeug debugger executes code sent by any
client, so nothing here can turn it on (see `create_app`).
"""
import os

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


class SettingError(ValueError):
    """An environment variable with a value the app cannot use."""


def _positive_int(name, raw):
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise SettingError(f"{name} must be positive, got {value}")
    return value


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
    return settings
