"""Check HTTP answers against the app's own /openapi.json.

`checking_client(app)` is a Flask test client whose every response must be
one the document describes: a documented route, method and status, a
documented content type, and (for JSON) a body valid against the response's
schema. A 404 on an unknown path and a 405 on a known one must still be the
documented error body. Used by tests/test_api.py for all its requests.
"""
import re

from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from app.openapi import document

SPEC = document()


def _path_pattern(template):
    """/static/{filename} -> ^/static/[^/]+$ (a parameter is one path segment)."""
    parts = re.split(r"\{[^}]+\}", template)
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in parts) + "$")


_PATHS = [(_path_pattern(template), template) for template in SPEC["paths"]]


def _template(path):
    matches = [template for pattern, template in _PATHS if pattern.match(path)]
    # the most specific (fewest parameters) wins: /predict/number over /static/{filename}
    return min(matches, key=lambda t: t.count("{")) if matches else None


def _validate(schema, body, where):
    # the response schema with the document's components beside it, so "#/components/..." resolves
    root = dict(schema, components=SPEC["components"])
    errors = sorted(Draft202012Validator(root).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{where}: body does not match /openapi.json: {errors[0].message} at {list(errors[0].path)}"


def check(method, path, response):
    """Assert that `response` (to `method path`) is what /openapi.json promises."""
    status = str(response.status_code)
    where = f"{method} {path} -> {status}"
    template = _template(path)
    error_schema = {"$ref": "#/components/schemas/Error"}
    if template is None:
        assert status == "404", f"{where}: path not in /openapi.json"
        _validate(error_schema, response.get_json(), where)
        return
    operation = SPEC["paths"][template].get(method.lower())
    if operation is None:
        assert status == "405", f"{where}: method not in /openapi.json"
        _validate(error_schema, response.get_json(), where)
        return
    documented = operation["responses"].get(status)
    assert documented is not None, f"{where}: status not documented (has {sorted(operation['responses'])})"
    content = documented.get("content")
    if not content or method == "HEAD" or status == "304":
        return
    mimetype = response.mimetype
    assert mimetype in content, f"{where}: content type {mimetype} not documented ({sorted(content)})"
    if mimetype == "application/json":
        _validate(content[mimetype]["schema"], response.get_json(), where)


class CheckingClient(FlaskClient):
    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        request = response.request
        check(request.method, request.path, response)
        return response


def checking_client(app):
    """A test client of `app` that checks every answer against /openapi.json."""
    return CheckingClient(app, app.response_class, use_cookies=True)
