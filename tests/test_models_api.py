"""Several models at once: the MODELS setting, GET /models and POST /predict?model=NAME.

A second model that always answers 3 (a softmax regression whose weights are
zero and whose bias favours 3) makes it visible which model answered.
"""
import os

import numpy as np
import pytest

from app import create_app
from app import models as registry
from app.config import SettingError, from_env
from model import archspec, modelfile
from model.inference import DEFAULT_MODEL_PATH, load_model
from model.train import NORMALIZATION
from tests.test_api import assert_json_error


def write_fixed_answer_model(path, digit):
    architecture = archspec.resolve("linear")
    bias = np.zeros(10, np.float32)
    bias[digit] = 5.0
    params = {"1.W": np.zeros((784, 10), np.float32), "1.b": bias}
    modelfile.save(path, {"name": f"always-{digit}", "architecture": architecture, "input": NORMALIZATION,
                          "test_accuracy": 0.1}, params)
    return str(path)


@pytest.fixture
def always3(tmp_path):
    return write_fixed_answer_model(tmp_path / "always3.npz", 3)


@pytest.fixture
def two_models(always3):
    app = create_app({"TESTING": True, "MODELS": f"cnn,always3={always3}"})
    return app, app.test_client()


def test_models_lists_every_loaded_model_with_its_facts(two_models, always3):
    _, client = two_models
    response = client.get("/models")
    assert response.status_code == 200
    body = response.get_json()
    assert body["default"] == "cnn"
    by_name = {m["name"]: m for m in body["models"]}
    assert list(by_name) == ["cnn", "always3"]
    cnn, fixed = by_name["cnn"], by_name["always3"]
    shipped = load_model()
    assert cnn["default"] is True and fixed["default"] is False
    assert cnn["sha256"] == shipped.meta["weights_sha256"] and len(cnn["sha256"]) == 64
    assert cnn["mnist_accuracy"] == shipped.meta["test_accuracy"]
    assert cnn["parameters"] == sum(int(np.prod(s)) for s in
                                    modelfile.param_shapes(shipped.architecture, (28, 28, 1))[0].values())
    assert cnn["architecture"].startswith("conv32x5p2-pool2")
    assert fixed == {"name": "always3", "default": False, "title": "always-3", "architecture": "784-10",
                     "parameters": 7850, "mnist_accuracy": 0.1,
                     "sha256": load_model(always3).meta["weights_sha256"]}


def test_predict_answers_with_the_model_asked_for(two_models, digit_png):
    _, client = two_models
    png = digit_png(7)
    default = client.post("/predict", data=png, content_type="image/png").get_json()
    named_cnn = client.post("/predict?model=cnn", data=png, content_type="image/png").get_json()
    fixed = client.post("/predict?model=always3", data=png, content_type="image/png").get_json()
    assert default["digit"] == 7 and named_cnn["digit"] == 7
    assert default["probabilities"] == named_cnn["probabilities"]
    assert fixed["digit"] == 3 and fixed["model"]["name"] == "always-3"
    assert len(fixed["probabilities"]) == 10 and sum(fixed["probabilities"]) == pytest.approx(1.0)


def test_an_unknown_model_is_a_400_that_lists_the_names(two_models, digit_png):
    _, client = two_models
    message = assert_json_error(client.post("/predict?model=resnet", data=digit_png(7),
                                            content_type="image/png"), 400)
    assert "resnet" in message and "cnn" in message and "always3" in message


def test_without_models_only_the_cnn_is_loaded_and_model_path_still_works(always3, digit_png):
    app = create_app({"TESTING": True})
    body = app.test_client().get("/models").get_json()
    assert [m["name"] for m in body["models"]] == ["cnn"] and body["default"] == "cnn"
    # MODEL_PATH swaps the default model, with or without MODELS.
    for config in ({"MODEL_PATH": always3}, {"MODEL_PATH": always3, "MODELS": "cnn"}):
        client = create_app({"TESTING": True, **config}).test_client()
        assert client.post("/predict", data=digit_png(7), content_type="image/png").get_json()["digit"] == 3


def test_the_cnn_is_the_default_even_when_listed_later(always3, digit_png):
    app = create_app({"TESTING": True, "MODELS": f"always3={always3},cnn"})
    body = app.test_client().get("/models").get_json()
    assert body["default"] == "cnn" and [m["name"] for m in body["models"]] == ["always3", "cnn"]
    assert app.test_client().post("/predict", data=digit_png(7), content_type="image/png").get_json()["digit"] == 7
    only = create_app({"TESTING": True, "MODELS": f"always3={always3}"})
    assert only.test_client().get("/models").get_json()["default"] == "always3"


def test_models_setting_comes_from_the_environment(monkeypatch, always3):
    monkeypatch.setenv("MODELS", f"cnn,always3={always3}")
    assert from_env()["MODELS"] == f"cnn,always3={always3}"
    app = create_app({"TESTING": True})
    assert list(app.extensions["digit_models"]) == ["cnn", "always3"]


@pytest.mark.parametrize("text,message", [
    ("cnn,cnn", "listed twice"),
    ("cnn,no-such-model", "no model called 'no-such-model'"),
    ("cnn,Bad Name=x.npz", "not a model name"),
    ("cnn,,linear", "not a model name"),
])
def test_bad_models_setting_stops_start_up_with_a_clear_message(text, message):
    with pytest.raises(SettingError, match=message):
        create_app({"TESTING": True, "MODELS": text})


def test_a_broken_model_file_in_models_stops_start_up(tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(modelfile.ModelFileError, match="broken.npz"):
        create_app({"TESTING": True, "MODELS": f"cnn,broken={broken}"})


ZOO_FILES = sorted(f[:-4] for f in os.listdir(registry.ZOO_DIR)) if os.path.isdir(registry.ZOO_DIR) else []


def test_the_shipped_zoo_loads_by_name_and_stays_small(digit_png):
    """The classic networks written by `make zoo` ship with the project."""
    assert {"linear", "sigmoid-15", "mlp-128-64"} <= set(registry.zoo_names())
    app = create_app({"TESTING": True, "MODELS": "cnn," + ",".join(registry.zoo_names())})
    client = app.test_client()
    listed = client.get("/models").get_json()["models"]
    assert [m["name"] for m in listed] == ["cnn", *registry.zoo_names()]
    for entry in listed:
        path = app.extensions["digit_models"][entry["name"]].path
        if entry["name"] != "cnn":
            assert os.path.getsize(path) < 1024 * 1024, f"{path} is not well under 1 MB"
            assert entry["mnist_accuracy"] > 0.7
        answer = client.post(f"/predict?model={entry['name']}", data=digit_png(1), content_type="image/png")
        assert answer.status_code == 200 and len(answer.get_json()["probabilities"]) == 10


def test_registry_paths_for_bare_names():
    paths = registry.parse_models("cnn," + registry.zoo_names()[0], DEFAULT_MODEL_PATH)
    assert paths["cnn"] == DEFAULT_MODEL_PATH
    assert paths[registry.zoo_names()[0]] == os.path.join(registry.ZOO_DIR, registry.zoo_names()[0] + ".npz")


def test_bad_models_settings_say_exactly_how_to_write_them():
    with pytest.raises(SettingError) as bad_name:
        registry.parse_models("cnn,Bad Name=x.npz", "m.npz")
    assert str(bad_name.value) == ("MODELS: 'Bad Name=x.npz' is not a model name (lower-case letters, digits, '.', "
                                   "'_' or '-'); write MODELS=cnn,linear or MODELS=cnn,mine=/path/to/model.npz")
    with pytest.raises(SettingError) as unknown:
        registry.parse_models("no-such-model", "m.npz")
    assert str(unknown.value) == ("MODELS: no model called 'no-such-model'; the shipped ones are "
                                  f"{', '.join(['cnn', *registry.zoo_names()])}, or give name=path/to/model.npz")


def test_an_unknown_model_message_is_exact_and_cut_at_forty_characters(two_models, digit_png):
    _, client = two_models
    name = "x" * 45
    message = assert_json_error(client.post(f"/predict?model={name}", data=digit_png(7),
                                            content_type="image/png"), 400)
    assert message == f"There is no model called {'x' * 40!r}; this server has cnn, always3 (see GET /models)."


def test_an_empty_model_parameter_means_the_default(two_models, digit_png):
    _, client = two_models
    answer = client.post("/predict?model=", data=digit_png(7), content_type="image/png").get_json()
    assert answer["digit"] == 7 and answer["model"]["name"] == load_model().meta["name"]


def test_a_model_file_without_a_name_is_titled_by_its_setting_name(tmp_path, always3):
    meta, params = modelfile.load(always3)
    meta = {k: v for k, v in meta.items() if k not in ("name", "weights_sha256")}
    unnamed = tmp_path / "unnamed.npz"
    modelfile.save(unnamed, meta, params)
    app = create_app({"TESTING": True, "MODELS": f"cnn,plain={unnamed}"})
    listed = {m["name"]: m for m in app.test_client().get("/models").get_json()["models"]}
    assert listed["plain"]["title"] == "plain"
