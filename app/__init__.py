"""digitdraw web app: `create_app()` builds it (gunicorn: 'app:create_app()')."""
import logging
from pathlib import Path

from flask import Flask
from flask.helpers import get_debug_flag

from . import api, errors, feedback, logs, metrics, number_api, openapi, pages, security
from . import config as settings
from . import models as model_registry
from .store import open_store


class DebugRefused(RuntimeError):
    """Raised when something asks for debug mode, which this app never runs in."""


class DigitApp(Flask):
    """Flask whose debug mode cannot be switched on.

    The Werkzeug debugger runs Python sent by any visitor; a self-hosted
    service must not be one environment variable away from that.
    """

    @property
    def debug(self):
        return False

    @debug.setter
    def debug(self, value):
        if value:
            raise DebugRefused("debug mode is disabled in digitdraw: the interactive debugger "
                               "would let any visitor run code on the server")


def page_folder(name):
    """Where the page's `static` or `templates` folder is.

    The source tree keeps them at the top level, beside `app/`; a wheel carries
    them inside the package (see pyproject.toml), so an installed app or the
    Docker image finds them there.
    """
    package = Path(__file__).resolve().parent
    inside = package / name
    return str(inside if inside.is_dir() else package.parent / name)


def create_app(config=None):
    """Build the app and load the model once (shared by forked gunicorn workers).

    `config` overrides the environment-derived settings (tests pass paths and
    limits here). A missing or broken model file raises ModelFileError, with
    its message, so the server refuses to start instead of serving errors.
    """
    if get_debug_flag():
        raise DebugRefused("FLASK_DEBUG is set, but debug mode is disabled in digitdraw "
                           "(the debugger would let any visitor run code); unset FLASK_DEBUG")
    app = DigitApp(__name__, static_folder=page_folder("static"),
                   template_folder=page_folder("templates"))
    app.config.from_mapping(settings.from_env())
    if config:
        app.config.update(config)
    app.config["DEBUG"] = False
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]
    # One file part is all /predict needs; a text field may carry a data URL.
    app.config["MAX_FORM_PARTS"] = 20
    app.config["MAX_FORM_MEMORY_SIZE"] = app.config["MAX_BODY_BYTES"]
    app.json.sort_keys = False
    # Flask would answer OPTIONS itself with an empty text/html 200; without it
    # OPTIONS is refused like any other unlisted method: 405, JSON, with Allow.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    logs.configure(app)

    models, default = model_registry.load_all(app.config)
    app.extensions["digit_model"] = models[default]
    app.extensions["digit_models"] = models
    app.extensions["digit_model_default"] = default
    for name, model in models.items():
        logging.getLogger("digitdraw").info(
            {"event": "model_loaded", "path": model.path, **model.identity, "as": name})

    if app.config["FEEDBACK"]:
        store = open_store(settings.store_url(app.config))
        store.close()  # no connection crosses gunicorn's fork; each worker opens its own
        app.extensions[feedback.STORE_KEY] = store
        logging.getLogger("digitdraw").info({"event": "corrections_store", "where": store.where})

    errors.register(app)
    security.register(app)
    metrics.register(app)
    metrics.set_model(app.extensions["digit_model"].identity)
    app.register_blueprint(api.bp)
    app.register_blueprint(number_api.bp)
    app.register_blueprint(feedback.bp)
    app.register_blueprint(model_registry.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(pages.bp)
    return app
