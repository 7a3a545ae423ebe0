# One entry point for people and CI. The virtualenv is created on first use,
# so a fresh machine with only python3 can run `make run` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
MNIST_DIR ?= $(abspath ../shared/mnist)
export MNIST_DIR

.PHONY: help venv run test test-fast train evaluate bench bench-serve soak lint clean

help:
	@echo "make run        serve the app with gunicorn on port $(PORT) (PORT=... overrides)"
	@echo "make test       run the whole test suite"
	@echo "make train      reproduce the shipped model (model/weights/mnist_cnn.npz)"
	@echo "make evaluate   test accuracy, per-class accuracy and confusion matrix of the shipped model"
	@echo "make bench      training/inference speed table (PyTorch beside it when installed)"
	@echo "make bench-serve  /predict vs /healthz throughput and latency under gunicorn"
	@echo "make zoo        retrain the classic networks (model/weights/zoo/) and print the comparison table"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

run: venv
	PORT=$(PORT) $(VENV)/bin/gunicorn --config gunicorn.conf.py 'app:create_app()'

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

# Reproduces the shipped model: same seed, same data, same machine -> same weights.
train: venv
	$(PY) -m model.train --arch cnn --epochs 15 --batch-size 128 --lr 0.002 --seed 1 --val-split 0 \
		--data $(MNIST_DIR) --out model/weights/mnist_cnn.npz

evaluate: venv
	$(PY) -m model.evaluate model/weights/mnist_cnn.npz --data $(MNIST_DIR)

bench: venv
	$(PY) -m bench.bench_model

bench-serve: venv
	$(PY) -m bench.bench_serve

soak: venv
	$(PY) -m bench.soak

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis test-artifacts

# ---- model zoo: the classic tutorial networks retrained and compared (docs/zoo.md)
.PHONY: zoo
zoo: venv
	nice -n 19 $(PY) -m tools.zoo --data $(MNIST_DIR)
