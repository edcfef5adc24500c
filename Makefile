# The two commands: `make run` and `make test`. Both build .venv first when it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DATASET := data/raw/default

# Offline by design: no usage telemetry from MLflow or DVC.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export PATH := $(BIN):$(PATH)

.PHONY: run test install install-test data params ui bench clean

## run: set up, generate the default dataset if missing, run every DVC stage
run: install data
	dvc repro
	@echo
	@echo "Scores:        data/scores/scores.parquet  (summary: data/scores/scores_summary.json)"
	@echo "Test metrics:  reports/metrics.json        (dvc metrics show)"
	@echo "Retention:     reports/retention.json      (report: reports/retention/retention.html)"
	@echo "Campaign:      churnml target --scores data/scores/scores.parquet --budget 500"
	@echo "MLflow UI:     make ui, then open http://127.0.0.1:5000 (experiment 'churnml', model 'churnml@champion')"

## test: set up (with the spark extra as well) and run the test suite, its files shared out among
## TEST_WORKERS processes (pytest-xdist; default: one per core). TEST_WORKERS=0 runs it in one process
TEST_WORKERS ?= auto
test: install-test
	pytest -n $(TEST_WORKERS) --dist loadfile

## install: create .venv and install churnml with the pinned versions
install: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	@touch $(STAMP)

## install-test: the same plus the spark extra (pyspark, for the Spark tests); `make run` never needs it
install-test: $(TEST_STAMP)

$(TEST_STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev,spark]'
	@touch $(STAMP) $(TEST_STAMP)

## data: generate the embedded default dataset (5,000 customers, 18 months)
data: $(DATASET)/customers.parquet

$(DATASET)/customers.parquet: | $(STAMP)
	churnml generate --out $(DATASET)

## params: recompose params.yaml from conf/ (DVC does this itself on `dvc exp run`); ARGS="data=mine labels=inactivity"
params: install
	python -m churnml.params $(ARGS)

## ui: the MLflow UI on http://127.0.0.1:5000
ui: install
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

## bench: the benchmarks (results in benchmarks/results/, see BENCHMARKS.md): features (200k customers,
## ~20M events; BENCH_ARGS=--large adds 1M / ~100M), explanations (1M rows), batch scoring and the retention report (1M customers),
## prediction quality against the peers (3 shapes x 3 seeds, about an hour on 2 cores), and Spark
## local[2] against DuckDB on features and scoring (200k customers, about 25 minutes on 2 cores)
bench: install
	$(VENV)/bin/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev,bench,spark]'
	python benchmarks/features.py $(BENCH_ARGS)
	python benchmarks/explain.py --reference-rows 20000
	python benchmarks/score.py
	python benchmarks/retention.py
	python benchmarks/quality.py
	python benchmarks/spark.py

## clean: remove generated data, models, reports and tracking (keeps .venv)
clean:
	rm -rf data/raw/default data/interim data/processed data/scores models reports mlflow.db mlartifacts
