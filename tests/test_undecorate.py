"""tools/undecorate.py: the scratch rewrite `make mutate-routes` runs mutmut on must
keep the app working exactly as decorated (same routes, hooks, handlers)."""
import textwrap

from tools.undecorate import rewrite


def test_decorators_become_rebinding_after_the_body():
    source = textwrap.dedent('''\
        import functools

        @functools.lru_cache(maxsize=8)
        @other.thing("x",
                     y=1)
        def square(n):
            return n * n


        def register(app):
            @app.after_request
            def hook(response):
                return response
            return hook


        class Box:
            @property
            def size(self):
                return 1
        ''')
    rewritten, names = rewrite(source)
    assert names == ["x_square", "x_register"]
    assert "@" not in rewritten.replace("@property", "")
    assert "square = (functools.lru_cache(maxsize=8))((other.thing(\"x\",\n             y=1))(square))" in rewritten
    assert "        return response\n    hook = (app.after_request)(hook)\n    return hook" in rewritten
    assert "    @property\n    def size(self):" in rewritten


def test_methods_are_named_as_mutmut_names_them():
    source = ("import contextlib\n\nclass Store:\n"
              "    @contextlib.contextmanager\n    def reached(self):\n        yield\n")
    rewritten, names = rewrite(source)
    assert names == ["x\u01c1Store\u01c1reached"]
    assert "        yield\n    reached = (contextlib.contextmanager)(reached)\n" in rewritten


def test_nested_decorated_functions_keep_their_lines_right():
    source = "@outer\ndef f():\n    @inner\n    def g():\n        pass\n    return g\n"
    rewritten, names = rewrite(source)
    assert names == ["x_f"]
    assert rewritten == ("def f():\n    def g():\n        pass\n    g = (inner)(g)\n    return g\n"
                         "f = (outer)(f)\n")


CHECK = """
import sys
from pathlib import Path
import app
assert Path(app.__file__).resolve().is_relative_to(Path.cwd()), app.__file__
client = app.create_app({"TESTING": True}).test_client()
answer = client.post("/predict", data=sys.stdin.buffer.read(), content_type="image/png").get_json()
print(answer["digit"], client.get("/healthz").status_code, client.get("/").status_code,
      client.delete("/predict").status_code, client.get("/healthz").headers["X-Frame-Options"])
"""


def test_the_rewritten_app_serves_as_the_decorated_one(tmp_path, digit_png):
    """Every module of app/ rewritten, in a copy: the same routes, hooks and handlers answer."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    for folder in ("app", "model", "static", "templates"):
        shutil.copytree(repo / folder, tmp_path / folder)
    for path in (tmp_path / "app").glob("*.py"):
        path.write_text(rewrite(path.read_text())[0])
    assert "@bp." not in (tmp_path / "app" / "api.py").read_text()
    result = subprocess.run([sys.executable, "-c", CHECK], input=digit_png(7), cwd=tmp_path, capture_output=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().split() == ["7", "200", "200", "405", "DENY"]
