# One entry point for people and CI. The virtualenv is created on first use,
# so a fresh machine with only python3 can run `make run` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
# make run listens on this machine only; HOST=0.0.0.0 make run opens it to the network.
HOST   ?= 127.0.0.1
# make train writes here (git-ignored); make promote copies it over the shipped model.
TRAIN_OUT ?= runs/mnist_cnn.npz
SHIPPED   ?= model/weights/mnist_cnn.npz
MNIST_DIR ?= $(abspath ../shared/mnist)
export MNIST_DIR

.PHONY: help venv run test test-fast train promote evaluate bench bench-serve soak lint clean

help:
	@echo "make run          serve the page and API on http://$(HOST):$(PORT) (HOST=0.0.0.0, PORT=... override)"
	@echo "make test         run the whole test suite"
	@echo "make test-fast    the tests without the browser and slow ones"
	@echo "make lint         ruff check (rules in pyproject.toml)"
	@echo "make train        train the shipped recipe into $(TRAIN_OUT) (TRAIN_OUT=... overrides)"
	@echo "make promote      check $(TRAIN_OUT) loads, then copy it over $(SHIPPED)"
	@echo "make evaluate     test accuracy, per-class accuracy and confusion matrix of the shipped model"
	@echo "make bench        training/inference speed table (PyTorch beside it when installed)"
	@echo "make bench-serve  /predict vs /healthz throughput and latency under gunicorn"
	@echo "make soak         50,000 mixed good and bad requests; fails on any 5xx or leak"
	@echo "make venv         create .venv and install the project with its test tools"
	@echo "make clean        remove .venv, build output, caches and test artifacts"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

run: venv
	HOST=$(HOST) PORT=$(PORT) $(VENV)/bin/gunicorn --config gunicorn.conf.py 'app:create_app()'

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

# Reproduces the shipped model: same seed, same data, same machine -> same weights.
# Written beside it, never over it: `make promote` replaces the shipped file.
train: venv
	$(PY) -m model.train --arch cnn --epochs 15 --batch-size 128 --lr 0.002 --seed 1 --val-split 0 \
		--data $(MNIST_DIR) --out $(TRAIN_OUT)

# Refuses a file the server would refuse (missing, truncated, altered) before copying.
promote: venv
	$(PY) -c "import sys; from model.inference import load_model; print(sys.argv[1], load_model(sys.argv[1]).identity)" \
		$(TRAIN_OUT)
	cp $(TRAIN_OUT) $(SHIPPED)
	@echo "promoted $(TRAIN_OUT) -> $(SHIPPED)"

evaluate: venv
	$(PY) -m model.evaluate model/weights/mnist_cnn.npz --data $(MNIST_DIR)

bench: venv
	$(PY) -m bench.bench_model

bench-serve: venv
	$(PY) -m bench.bench_serve

soak: venv
	$(PY) -m bench.soak

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis test-artifacts
