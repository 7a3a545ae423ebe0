"""Several models side by side: the `MODELS` setting, `GET /models`, and the
lookup behind `POST /predict?model=NAME`.

`MODELS` is a comma list. A bare name is `cnn` (the model at MODEL_PATH, the
shipped CNN unless overridden) or a zoo model shipped in model/weights/zoo/;
`name=path` loads any other model file. Unset, only the CNN is loaded, as
before. The CNN is the default whenever it is listed, otherwise the first entry.
"""
import os
import re

from flask import Blueprint, current_app, jsonify, request

from model import archspec
from model.inference import DEFAULT_MODEL_PATH, load_model

from .config import SettingError
from .errors import BadInput

bp = Blueprint("models", __name__)

ZOO_DIR = os.path.join(os.path.dirname(DEFAULT_MODEL_PATH), "zoo")
DEFAULT_NAME = "cnn"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


def zoo_names():
    if not os.path.isdir(ZOO_DIR):
        return []
    return sorted(f[:-4] for f in os.listdir(ZOO_DIR) if f.endswith(".npz"))


def parse_models(text, model_path):
    """`MODELS` text -> {name: path} in the order given (the first is listed first)."""
    text = (text or "").strip()
    if not text:
        return {DEFAULT_NAME: model_path}
    paths = {}
    for entry in (part.strip() for part in text.split(",")):
        name, _, path = entry.partition("=")
        name = name.strip().lower()
        if not NAME.fullmatch(name):
            raise SettingError(f"MODELS: {entry!r} is not a model name (lower-case letters, digits, '.', '_' "
                               "or '-'); write MODELS=cnn,linear or MODELS=cnn,mine=/path/to/model.npz")
        if name in paths:
            raise SettingError(f"MODELS: {name!r} is listed twice")
        if path.strip():
            paths[name] = path.strip()
        elif name == DEFAULT_NAME:
            paths[name] = model_path
        elif name in zoo_names():
            paths[name] = os.path.join(ZOO_DIR, f"{name}.npz")
        else:
            raise SettingError(f"MODELS: no model called {name!r}; the shipped ones are "
                               f"{', '.join([DEFAULT_NAME, *zoo_names()])}, or give name=path/to/model.npz")
    return paths


def load_all(config):
    """{name: Model} and the default name; a bad file stops start-up with its message."""
    paths = parse_models(config.get("MODELS"), config["MODEL_PATH"])
    models = {name: load_model(path) for name, path in paths.items()}
    default = DEFAULT_NAME if DEFAULT_NAME in models else next(iter(models))
    return models, default


def loaded_models():
    return current_app.extensions.get("digit_models") or {}


def requested_model():
    """The model `?model=NAME` asks for (the default without it), or None when none
    is loaded; an unknown name is a 400 that lists the names that work."""
    name = request.args.get("model")
    if name is None or name == "":
        return current_app.extensions.get("digit_model")
    models = loaded_models()
    if name not in models:
        raise BadInput(f"There is no model called {name[:40]!r}; this server has "
                       f"{', '.join(models)} (see GET /models).")
    return models[name]


def describe(name, model, default):
    return {
        "name": name,
        "default": name == default,
        "title": model.meta.get("name", name),
        "architecture": archspec.summary(model.architecture, model.input_shape),
        "parameters": archspec.parameter_count(model.architecture, model.input_shape),
        "mnist_accuracy": model.meta.get("test_accuracy"),
        "sha256": model.meta["weights_sha256"],
    }


@bp.get("/models")
def list_models():
    default = current_app.extensions.get("digit_model_default")
    return jsonify(default=default,
                   models=[describe(name, model, default) for name, model in loaded_models().items()])
