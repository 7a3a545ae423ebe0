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
	@echo "make fuzz-long  the fuzz suite with 25x the examples, freshly random (HYPOTHESIS_PROFILE=long)"
	@echo "make mutate     mutation-test the core modules (mutmut; slow, not in CI; MODULES=model.losses for one)"

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

# Long fuzzing: new random examples each run, 25x as many as CI's fixed set.
.PHONY: fuzz-long
fuzz-long: venv
	HYPOTHESIS_PROFILE=long $(PY) -m pytest tests/test_fuzz.py -m "not slow" $(PYTEST_ARGS)

# Mutation testing (docs/development.md): not in CI, it takes hours on two cores.
# One core module at a time, each against its own fast tests (tests/mutation_selection.py).
MUTMUT_VERSION := 3.8.1
MODULES ?= model.optimizers model.losses model.layers model.modelfile model.inference \
	app.preprocess app.api app.payload app.imaging
TESTS_model.optimizers := tests/test_optimizers.py
TESTS_model.losses     := tests/test_gradients.py tests/test_losses.py
TESTS_model.layers     := tests/test_layers.py tests/test_gradients.py tests/test_architecture.py
TESTS_model.modelfile  := tests/test_modelfile.py tests/test_architecture.py
TESTS_model.inference  := tests/test_modelfile.py tests/test_refusals.py \
	tests/test_shipped_model.py::test_batch_and_single_predictions_agree \
	tests/test_shipped_model.py::test_predict_proba_rejects_wrong_shapes
TESTS_app.preprocess   := tests/test_preprocess.py
TESTS_app.api          := tests/test_api.py tests/test_refusals.py
TESTS_app.payload      := tests/test_api.py tests/test_refusals.py
TESTS_app.imaging      := tests/test_api.py tests/test_refusals.py

.PHONY: mutate
mutate: venv
	$(PY) -m pip install --quiet 'mutmut==$(MUTMUT_VERSION)'
	$(foreach m,$(MODULES),rm -f mutants/mutmut-stats.json; \
		MUTATE_TESTS="$(TESTS_$(m))" nice -n 19 $(VENV)/bin/mutmut run --max-children 2 "$(m).*";)
	$(PY) -m tools.mutation_score --survivors

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis test-artifacts
	rm -rf mutants
