"""GET /openapi.json: a valid OpenAPI 3.1 document of every route the app serves."""
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from app import create_app
from app.openapi import document
from tests.openapi_check import check, checking_client

CONTRACT_ROUTES = {("/predict", "post"), ("/predict/number", "post"), ("/feedback", "post"),
                   ("/feedback/summary", "get"), ("/models", "get"), ("/healthz", "get"),
                   ("/metrics", "get"), ("/openapi.json", "get"), ("/", "get")}


def test_served_document_is_valid_openapi_3_1(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    spec = response.get_json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema


def test_the_validator_does_reject_a_broken_document():
    broken = document()
    broken["paths"]["/predict"]["post"]["responses"]["200"] = {"content": {}}  # no description
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_contract_route_is_documented():
    spec = document()
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert CONTRACT_ROUTES <= documented


def test_every_route_the_app_serves_is_documented(app):
    spec = document()
    for rule in app.url_map.iter_rules():
        template = rule.rule.replace("<path:", "{").replace("<", "{").replace(">", "}")
        assert template in spec["paths"], f"{rule.rule} is served but not in /openapi.json"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][template], f"{method} {rule.rule} not documented"


def test_every_error_status_has_the_error_body():
    spec = document()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path != "/healthz":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


def test_checker_accepts_real_answers_and_rejects_wrong_ones(app, digit_png):
    client = checking_client(app)
    assert client.post("/predict", data=digit_png(7), content_type="image/png").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/openapi.json").status_code == 200

    class Fake:
        def __init__(self, status, body, mimetype="application/json"):
            self.status_code, self._body, self.mimetype = status, body, mimetype

        def get_json(self):
            return self._body

    with pytest.raises(AssertionError, match="does not match"):
        check("POST", "/predict", Fake(200, {"digit": 12, "confidence": 0.9, "probabilities": [0.1] * 10,
                                             "is_digit": True}))
    with pytest.raises(AssertionError, match="does not match"):
        check("POST", "/predict", Fake(200, {"digit": 1, "confidence": 0.9, "probabilities": [0.1] * 9,
                                             "is_digit": True}))
    with pytest.raises(AssertionError, match="does not match"):
        check("POST", "/predict", Fake(422, {"message": "blank"}))
    with pytest.raises(AssertionError, match="not documented"):
        check("POST", "/predict", Fake(418, {"error": "teapot"}))
    with pytest.raises(AssertionError, match="content type"):
        check("GET", "/healthz", Fake(200, "ok", mimetype="text/html"))
    with pytest.raises(AssertionError, match="path not in"):
        check("GET", "/undocumented", Fake(200, {"x": 1}))


def test_number_feedback_and_models_answers_match_the_document(tmp_path, digit_png):
    """The routes of the number reader, corrections and the model zoo answer as documented."""
    from tests.test_numbers import number_png
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "MODELS": "cnn,linear"})
    client, png = checking_client(app), digit_png()
    models = client.get("/models").get_json()
    assert models["default"] == "cnn" and [m["name"] for m in models["models"]] == ["cnn", "linear"]
    assert client.post("/predict?model=linear", data=png, content_type="image/png").status_code == 200
    assert client.post("/predict?model=nope", data=png, content_type="image/png").status_code == 400
    assert client.post("/predict/number", data=number_png(), content_type="image/png").status_code == 200
    stored = client.post("/feedback?label=3", data=png, content_type="image/png")
    assert stored.status_code == 201 and stored.get_json()["label"] == 3
    assert client.post("/feedback", data=png, content_type="image/png").status_code == 400
    summary = client.get("/feedback/summary").get_json()
    assert summary["count"] == 1 and summary["per_label"]["3"] == 1
