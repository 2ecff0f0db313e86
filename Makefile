# The two commands: `make demo` (whole pipeline on the bundled sample) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install models demo demo-images test test-faults test-airflow bench bench-stages bench-judge bench-packing bench-peer clean

$(VENV)/.installed: requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

models/tiny-judge/config.json: | $(VENV)/.installed
	$(VENV)/bin/judgemine build-tiny-judge --output models/tiny-judge --texts examples/sample/definitions.jsonl \
		--texts examples/sample/geography_qa.jsonl --texts examples/sample/paraphrases.jsonl

models/tiny-clip/config.json models/tiny-qwen2-vl/config.json models/tiny-idefics3/config.json: | $(VENV)/.installed
	$(VENV)/bin/judgemine build-tiny-judge --kind $(patsubst models/tiny-%/config.json,%,$@) \
		--output $(dir $@) --texts examples/multimodal/pairs_mmeb.jsonl --texts examples/multimodal/pairs_unime.jsonl

models: models/tiny-judge/config.json models/tiny-clip/config.json models/tiny-qwen2-vl/config.json \
	models/tiny-idefics3/config.json

demo: install models
	$(VENV)/bin/judgemine run --config examples/demo.yaml --output out/demo $(ARGS)
	$(VENV)/bin/judgemine export --format unime --output out/demo

demo-images: install models
	$(PY) examples/multimodal/copy_images.py
	$(VENV)/bin/judgemine run --config examples/demo_images.yaml --output out/demo-images $(ARGS)
	$(VENV)/bin/judgemine export --format unime --output out/demo-images

test: install
	$(PY) -m pytest -q tests --ignore=tests/faults $(ARGS)

# The example Airflow DAG under `airflow dags test`, in its own environment (Airflow pins its own libraries).
AIRFLOW_VENV ?= .venv-airflow
$(AIRFLOW_VENV)/.installed:
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q "apache-airflow==3.3.2"
	touch $@

test-airflow: install models $(AIRFLOW_VENV)/.installed
	tests/airflow/dags_test.sh $(AIRFLOW_VENV)

# Real processes killed with SIGKILL at every commit step, concurrent runs, repeated exit codes (~10 min).
test-faults: install
	$(PY) -m pytest -q tests/faults $(ARGS)

clean:
	rm -rf out models

bench-judge: install bench-packing
	$(PY) -m bench.bench_judge

bench-packing: install
	$(PY) -m bench.bench_packing

bench-stages: install
	$(PY) -m bench.bench_stages

# judgemine against sentence-transformers' mine_hard_negatives on 20k real GCIDE pairs, median of 3 (~25 min).
bench-peer: install
	$(PY) -m bench.bench_peer $(ROUNDS)

bench: bench-stages bench-judge
