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
TRAIN_STAGE1 ?= runs/mnist_cnn_stage1.npz
TRAIN_STAGE2 ?= runs/mnist_cnn_stage2.npz
SHIPPED   ?= model/weights/mnist_cnn.npz
MNIST_DIR ?= $(abspath ../shared/mnist)
export MNIST_DIR
PENDIGITS_DIR ?= $(abspath ../shared/pendigits)
export PENDIGITS_DIR
# Pen-domain training images (training institutions) and the held-out writers
# that set the not-a-digit threshold (tools/pendata.py names both groups).
PEN_TRAIN := runs/pen_train.npz
PEN_STYLES := runs/pen_styles.npz
PEN_CALIBRATE := runs/pen_calibrate.npz
# '>' and '<' drawn as doodles (tools/shapes.py chevron), for the third stage.
PEN_CHEVRONS := runs/pen_chevrons.npz
PEN_SOURCES := tools/pen_dataset.py tools/pendata.py tools/shapes.py tools/strokes.py app/preprocess.py

.PHONY: help venv run test test-fast train promote pen-data eval-pen evaluate bench bench-serve soak lint fuzz-long bench-attack lock test-docker finetune mutate mutate-routes eval-numbers zoo clean zoo-eval bench-predict bench-settings

help:
	@echo "make run          serve the page and API on http://$(HOST):$(PORT) (HOST=0.0.0.0, PORT=... override)"
	@echo "make test         run the whole test suite"
	@echo "make test-fast    the tests without the browser and slow ones"
	@echo "make lint         ruff check (rules in pyproject.toml)"
	@echo "make train        the shipped recipe (MNIST + pen data, three stages) into $(TRAIN_OUT), ~55 min (TRAIN_OUT=... overrides)"
	@echo "make promote      check $(TRAIN_OUT) loads and its MNIST accuracy, then copy it over $(SHIPPED)"
	@echo "make pen-data     draw the pen-domain training and calibration images into runs/ (~10 min)"
	@echo "make eval-pen     the shipped model on real pen digits of held-out writers (docs/pen.md)"
	@echo "make evaluate     test accuracy, per-class accuracy and confusion matrix of the shipped model"
	@echo "make bench        training/inference speed table (PyTorch beside it when installed)"
	@echo "make bench-serve  /predict vs /healthz throughput and latency under gunicorn"
	@echo "make soak         50,000 mixed good and bad requests; fails on any 5xx or leak"
	@echo "make venv         create .venv and install the project with its test tools"
	@echo "make clean        remove .venv, build output, caches and test artifacts"
	@echo "make fuzz-long    the fuzz suite with 25x the examples, freshly random (HYPOTHESIS_PROFILE=long)"
	@echo "make bench-attack normal latency beside latency under 64 slow-body + 64 idle clients"
	@echo "make lock         re-pin the runtime dependencies with hashes into requirements.lock (uv pip compile)"
	@echo "make test-docker  build and run the image under a private dockerd (root, docker.io, mmdebstrap)"
	@echo "make finetune     export the stored corrections and fine-tune the shipped model on them (docs/corrections.md)"
	@echo "make mutate       mutation-test the core modules (mutmut; slow, not in CI; MODULES=model.losses for one)"
	@echo "make mutate-routes mutation-test the routes, error handlers and hooks mutmut skips (decorated functions)"
	@echo "make eval-numbers exact-number accuracy on numbers composed from real pen digits (N=200 per spacing)"
	@echo "make zoo          retrain the classic networks (model/weights/zoo/) and print the comparison table"
	@echo "make zoo-eval     judge the shipped zoo files and the CNN again (no training) and print the table"
	@echo "make bench-predict in-process CPU per /predict and per stage, beside BASELINE=<git rev> when given"
	@echo "make bench-settings /predict req/s, p50/p99 and server CPU for several values of one server setting, side by side (ARGS=--env MAX_REQUESTS --values 10000,50000)"

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

# Reproduces the shipped model: same seed, data, machine and BLAS kernel -> same weights
# (elsewhere an equivalent model: docs/model.md).
# Stage 1: the schedule, then three averaged epochs. Stage 2: two more averaged
# epochs from its weights with every MNIST image drawn twice (docs/pen.md: this
# buys back the MNIST accuracy the pen images cost; more MNIST costs pen accuracy).
# Stage 3: stage 2 again from its weights, with 2,000 drawn '>' and '<' as "not a
# digit" (the training writers wrote 23 '>'; a clean one read as a sure 7).
TRAIN_DATA = --data $(MNIST_DIR) --extra $(PEN_TRAIN) --extra $(PEN_STYLES) --calibrate $(PEN_CALIBRATE)
train: venv pen-data
	$(PY) -m model.train --arch cnn --epochs 12 --batch-size 128 --lr 0.002 --seed 1 --val-split 0 \
		--average-epochs 3 --average-lr 0.0002 $(TRAIN_DATA) --out $(TRAIN_STAGE1)
	$(PY) -m model.train --arch cnn --init $(TRAIN_STAGE1) --epochs 0 --batch-size 128 --seed 1 --val-split 0 \
		--average-epochs 2 --average-lr 0.0002 --mnist-repeat 2 $(TRAIN_DATA) --out $(TRAIN_STAGE2)
	$(PY) -m model.train --arch cnn --init $(TRAIN_STAGE2) --epochs 0 --batch-size 128 --seed 1 --val-split 0 \
		--average-epochs 2 --average-lr 0.0002 --mnist-repeat 2 $(TRAIN_DATA) --extra $(PEN_CHEVRONS) --out $(TRAIN_OUT)

# Written beside it, never over it. promote refuses a file the server would refuse
# (missing, truncated, altered: load_model raises) before copying.
promote: venv
	$(PY) -m model.evaluate $(TRAIN_OUT) --data $(MNIST_DIR)
	cp $(TRAIN_OUT) $(SHIPPED)
	@echo "promoted $(TRAIN_OUT) -> $(SHIPPED); run make eval-pen and make test before committing it"

pen-data: venv $(PEN_TRAIN) $(PEN_STYLES) $(PEN_CALIBRATE) $(PEN_CHEVRONS)

$(PEN_TRAIN): $(PEN_SOURCES)
	$(PY) -m tools.pen_dataset --out $@

$(PEN_STYLES): $(PEN_SOURCES) tools/handstyles.py
	$(PY) -m tools.pen_dataset --out $@ --renders 0 --styled 2 --char-renders 0 --shapes 0 --mnist-restroke 0

$(PEN_CHEVRONS): $(PEN_SOURCES)
	$(PY) -m tools.pen_dataset --out $@ --renders 0 --styled 0 --char-renders 0 --shapes 2000 --shape-kinds chevron \
		--mnist-restroke 0 --seed 3

$(PEN_CALIBRATE): $(PEN_SOURCES)
	$(PY) -m tools.pen_dataset --out $@ --institutions tos,imp --judged --renders 24 \
		--max-chars 2000 --shapes 700 --mnist-restroke 0

eval-pen: venv
	$(PY) -m tools.pen_eval $(PEN_EVAL_ARGS)

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
# Long fuzzing: new random examples each run, 25x as many as CI's fixed set.
fuzz-long: venv
	HYPOTHESIS_PROFILE=long $(PY) -m pytest tests/test_fuzz.py -m "not slow" $(PYTEST_ARGS)

# Mutation testing (docs/development.md): not in CI, it takes hours on two cores.
# One core module at a time, each against its own fast tests (tests/mutation_selection.py).
MUTMUT_VERSION := 3.8.1
MODULES ?= model.optimizers model.losses model.layers model.modelfile model.inference model.ops \
	app.preprocess app.api app.payload app.imaging app.worker_balance model.parallel app.segment \
	app.request_framing app.store app.feedback model.rejection model.augment model.idx app.config \
	app.security app.metrics app.errors app.models app.number_api model.calibrate app.logs app.server_log \
	app.buffering_worker
TESTS_model.optimizers := tests/test_optimizers.py tests/test_threaded_training.py
TESTS_model.losses     := tests/test_gradients.py tests/test_losses.py
TESTS_model.layers     := tests/test_layers.py tests/test_gradients.py tests/test_architecture.py \
	tests/test_archspec.py tests/test_threaded_training.py
TESTS_model.modelfile  := tests/test_modelfile.py tests/test_architecture.py
TESTS_model.inference  := tests/test_inference.py tests/test_modelfile.py tests/test_lean_inference.py \
	tests/test_archspec.py::test_inference_runs_sigmoid_and_tanh_like_the_trainer \
	tests/test_shipped_model.py::test_batch_and_single_predictions_agree \
	tests/test_shipped_model.py::test_predict_proba_rejects_wrong_shapes
TESTS_model.ops        := tests/test_lean_inference.py tests/test_layers.py tests/test_gradients.py \
	tests/test_inference.py
TESTS_app.preprocess   := tests/test_preprocess.py tests/test_lean_preprocess.py tests/test_preprocess_equivalence.py \
	tests/test_numbers.py
TESTS_app.api          := tests/test_describe.py tests/test_api.py tests/test_refusals.py
TESTS_app.payload      := tests/test_payload.py tests/test_api.py tests/test_refusals.py
TESTS_app.imaging      := tests/test_imaging.py tests/test_api.py tests/test_refusals.py
TESTS_app.worker_balance := tests/test_worker_balance.py
TESTS_app.buffering_worker := tests/test_buffering_worker_parts.py
TESTS_model.parallel   := tests/test_parallel.py tests/test_threaded_training.py
TESTS_app.segment      := tests/test_segment.py tests/test_numbers.py
TESTS_app.request_framing := tests/test_request_framing.py
TESTS_app.store        := tests/test_store.py tests/test_feedback.py
TESTS_app.feedback     := tests/test_feedback.py tests/test_store.py
TESTS_model.rejection  := tests/test_pen.py tests/test_calibrate.py
TESTS_model.augment    := tests/test_augment.py
TESTS_model.idx        := tests/test_idx.py
TESTS_app.config       := tests/test_config.py tests/test_feedback.py tests/test_api.py tests/test_models_api.py
TESTS_app.security     := tests/test_api.py tests/test_page.py
TESTS_app.metrics      := tests/test_metrics.py
TESTS_app.errors       := tests/test_errors.py tests/test_refusals.py tests/test_api.py
TESTS_app.models       := tests/test_models_api.py
TESTS_app.number_api   := tests/test_numbers.py
TESTS_model.calibrate  := tests/test_calibrate.py
TESTS_app.logs         := tests/test_logs.py tests/test_api.py
TESTS_app.server_log   := tests/test_gunicorn.py

mutate: venv
	$(PY) -m pip install --quiet 'mutmut==$(MUTMUT_VERSION)'
	$(foreach m,$(MODULES),rm -f mutants/mutmut-stats.json; \
		MUTATE_TESTS="$(TESTS_$(m))" nice -n 19 $(VENV)/bin/mutmut run --max-children 2 "$(m).*";)
	$(PY) -m tools.mutation_score --survivors

# mutmut skips decorated functions: the routes, error handlers and request hooks.
# This runs it on a scratch copy of HEAD (git archive) whose decorators
# tools/undecorate.py has turned into plain calls, on those functions only.
ROUTES_TREE ?= $(or $(TMPDIR),/tmp)/digitdraw-mutate-routes
ROUTE_MODULES := app/api.py app/feedback.py app/metrics.py app/models.py app/number_api.py app/openapi.py \
	app/pages.py app/logs.py app/security.py app/errors.py app/store.py
TESTS_routes := tests/test_api.py tests/test_api_answers.py tests/test_describe.py tests/test_refusals.py \
	tests/test_payload.py tests/test_imaging.py tests/test_feedback.py tests/test_store.py tests/test_metrics.py \
	tests/test_openapi.py tests/test_page.py tests/test_numbers.py tests/test_models_api.py tests/test_errors.py \
	tests/test_config.py tests/test_pen.py tests/test_shipped_model.py tests/test_logs.py
mutate-routes: venv
	$(PY) -m pip install --quiet 'mutmut==$(MUTMUT_VERSION)'
	rm -rf $(ROUTES_TREE) && mkdir -p $(ROUTES_TREE)
	git archive HEAD | tar -x -C $(ROUTES_TREE)
	cd $(ROUTES_TREE) && $(CURDIR)/$(PY) -m tools.undecorate $(ROUTE_MODULES) > route-mutants.txt
	cd $(ROUTES_TREE) && MNIST_DIR=$(MNIST_DIR) MUTATE_TESTS="$(TESTS_routes)" nice -n 19 \
		$(CURDIR)/$(VENV)/bin/mutmut run --max-children 2 $$(cat route-mutants.txt)
	cd $(ROUTES_TREE) && $(CURDIR)/$(PY) -m tools.mutation_score --survivors

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis test-artifacts mutants

# ---- pinned runtime dependencies (requirements.lock, used by the Dockerfile)

# Python 3.11 and Linux: what the Dockerfile's base image runs. Every file of each
# pinned release gets its hash, so the lock serves amd64 and arm64 builds alike.
# LOCK_ADD="pkg other[extra]" pins requirements that pyproject.toml does not list yet.
LOCK_ADD ?=
lock: venv
	$(PY) -m pip install --quiet -e '.[lock]'
	printf '%s\n' $(foreach r,$(LOCK_ADD),'$(r)') | $(VENV)/bin/uv pip compile pyproject.toml - \
		--generate-hashes --python-version 3.11 --python-platform linux --no-cache \
		--custom-compile-command 'make lock' --output-file requirements.lock

test-docker: venv
	$(PY) -m pytest -m docker $(PYTEST_ARGS)
# Slow and idle clients: ARGS="--duration 10" etc. pass through.
bench-attack: venv
	$(PY) -m bench.attack $(ARGS)

# ---- corrections (docs/corrections.md): stored corrections -> a fine-tuned model.
# Writes runs/finetuned.npz; serve it with MODEL_PATH=runs/finetuned.npz make run.
FINETUNE_BASE ?= model/weights/mnist_cnn.npz
FINETUNE_OUT  ?= runs/finetuned.npz
FINETUNE_ARGS ?=
finetune: venv
	$(PY) -m model.corrections export --out runs/corrections.npz
	$(PY) -m model.finetune --base $(FINETUNE_BASE) --corrections runs/corrections.npz \
		--data $(MNIST_DIR) --out $(FINETUNE_OUT) $(FINETUNE_ARGS)
# ---- numbers (app/segment.py, docs/numbers.md)
N ?= 200
eval-numbers: venv
	$(PY) -m tools.number_eval --n $(N) --inst all,gmd,app

# ---- model zoo: the classic tutorial networks retrained and compared (docs/zoo.md)
zoo: venv
	nice -n 19 $(PY) -m tools.zoo --data $(MNIST_DIR)

# ---- model zoo, evaluation only: the shipped .npz files judged again, nothing trained
zoo-eval: venv
	nice -n 19 $(PY) -m tools.zoo --eval-only --data $(MNIST_DIR)

# --- In-process CPU per request and per stage (issue 11; docs/benchmarks.md) ---
bench-predict: venv
	$(PY) -m bench.bench_predict $(if $(BASELINE),--baseline $(BASELINE)) $(ARGS)

bench-settings: venv
	$(PY) -m bench.compare_settings $(ARGS)
