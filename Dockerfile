# digitdraw: the page and the /predict API under gunicorn.
#   docker build -t digitdraw .
#   docker run --rm -p 8000:8000 digitdraw
#   docker run --rm -p 8000:8000 -e MODEL_PATH=/models/x.npz -v "$PWD/models:/models:ro" digitdraw
#   docker run --rm -p 8000:8000 -v digitdraw-data:/srv/digitdraw/data digitdraw   (corrections kept)
#
# Two stages so that nothing used to build (source tree, build backend, caches)
# reaches the image that runs: the final stage only ever sees the wheel.
#
# No `# syntax=` line: BuildKit's built-in Dockerfile frontend (Docker >= 20.10)
# has RUN --mount, and without that line a build fetches no frontend image.

FROM python:3.11.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
# Only what the wheel is made of; .dockerignore keeps the rest out of the context.
COPY pyproject.toml README.md LICENSE ./
COPY model/ model/
COPY app/ app/
COPY static/ static/
COPY templates/ templates/
RUN python -m pip wheel --no-deps --wheel-dir /wheels .


FROM python:3.11.11-slim-bookworm AS runtime

# PORT and WEB_CONCURRENCY are read by gunicorn.conf.py (which also pins BLAS
# to one thread per worker); WEB_CONCURRENCY is set rather than derived from
# the CPU count, which inside a CPU-quota container is the host's. MODEL_PATH
# is left unset so the model shipped inside the wheel is served.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=8000 \
    WEB_CONCURRENCY=2

# Dependencies exactly as pinned in requirements.lock, each file checked against
# its hash (`make lock` refreshes it), then the wheel alone (--no-deps): an image
# built next year holds the same packages. Both are bind-mounted, not copied, so
# they leave no layer behind; binary wheels only, since this stage has no compiler.
RUN --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --require-hashes --only-binary=:all: -r /tmp/requirements.lock \
    && python -m pip install --no-deps --only-binary=:all: /wheels/*.whl \
    && useradd --system --uid 10001 --user-group --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin digitdraw

# The working directory holds only the server settings (bind 0.0.0.0:$PORT,
# preload, timeouts, heartbeat on /dev/shm): the code is imported from
# site-packages, never from here.
WORKDIR /srv/digitdraw
COPY gunicorn.conf.py ./

# Corrections (POST /feedback) go to an SQLite file in DATA_DIR, here relative to
# the WORKDIR: /srv/digitdraw/data, a volume the server's user owns. Keep them
# across containers with -v digitdraw-data:/srv/digitdraw/data, or share one
# PostgreSQL between replicas with -e DATABASE_URL=postgresql://...
RUN mkdir data && chown 10001:10001 data
ENV DATA_DIR=data
VOLUME ["/srv/digitdraw/data"]

# Numeric so that orchestrators (runAsNonRoot) can verify it is not root.
USER 10001:10001
EXPOSE 8000

# urllib raises on anything but 2xx (healthz answers 503 until the model is loaded).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
