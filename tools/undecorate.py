"""Rewrite decorated functions so that mutmut mutates them (`make mutate-routes`).

    python -m tools.undecorate FILE... > names.txt

mutmut 3 leaves every decorated function alone, and in a Flask app that is
where the routes, error handlers and request hooks live. In a scratch copy of
the tree (never the checkout: the files are rewritten in place) this turns

    @bp.post("/predict")
    def predict(): ...

into the same function without its decorator, rebound right after its body:

    def predict(): ...
    predict = (bp.post("/predict"))(predict)

which registers the same route with the same function (nested hooks inside
`register(app)` alike). It prints one mutmut name pattern per top-level
function that changed (`app.api.x_predict*`, `app.errors.x_register*` for the
handlers `register(app)` defines): mutmut mutates nested functions as part of
the one that holds them. Properties, class and static methods and
dataclasses are left as they are.
"""
import ast
import sys
from pathlib import Path

KEPT = ("property", "setter", "getter", "deleter", "staticmethod", "classmethod", "dataclass")


def _kept(decorator):
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")) in KEPT


def _decorated(tree):
    return [node for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.decorator_list
            and not any(_kept(d) for d in node.decorator_list)]


def _functions(tree):
    """(mutmut's name, node) of the module's functions and its classes' methods."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"x_{node.name}", node
        elif isinstance(node, ast.ClassDef):
            for method in node.body:
                if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"x\u01c1{node.name}\u01c1{method.name}", method


def rewrite(source):
    """(source without function decorators, mutmut's names of the functions and methods changed).

    One function per pass, parsing again after each, so that line numbers stay
    right when one decorated function holds another."""
    tree = ast.parse(source)
    top_level = [name for name, node in _functions(tree) if _decorated(node)]
    while functions := _decorated(tree):
        node = functions[0]
        lines = source.splitlines(keepends=True)
        wrapped = node.name
        for decorator in reversed(node.decorator_list):
            wrapped = f"({ast.get_source_segment(source, decorator)})({wrapped})"
        lines.insert(node.end_lineno, f"{' ' * node.col_offset}{node.name} = {wrapped}\n")
        del lines[node.decorator_list[0].lineno - 1:node.lineno - 1]
        source = "".join(lines)
        tree = ast.parse(source)
    return source, top_level


def main(paths):
    for path in map(Path, paths):
        source, names = rewrite(path.read_text())
        path.write_text(source)
        module = ".".join(path.with_suffix("").parts)
        for name in names:
            print(f"{module}.{name}*")


if __name__ == "__main__":
    main(sys.argv[1:])
