# docqa: every target sets up its own virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DOCS ?= seeds
INDEX ?= .docqa
EVAL_DATA ?= ../shared/eval
HOST ?= 127.0.0.1
PORT ?= 7860
RAY ?=
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup run index search ask summarize check test test-fast eval eval-smoke bench stress stress-ci lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: DOCS=$(DOCS) INDEX=$(INDEX) RAY=$(RAY)"

setup: $(STAMP)  ## create .venv/ and install docqa with its test tools

# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,eval]'
	touch $@

run: $(STAMP)  ## serve the web UI and the OpenAI API (/v1) on http://127.0.0.1:7860 (indexes DOCS, then follows its changes)
	$(BIN)/docqa serve --docs "$(DOCS)" --index "$(INDEX)" --host $(HOST) --port $(PORT)

index: $(STAMP)  ## build or update the index of DOCS (default seeds/) in INDEX (default .docqa/); RAY=local or RAY=HOST:PORT embeds on a Ray cluster
	$(BIN)/docqa index "$(DOCS)" --index "$(INDEX)" $(if $(RAY),--ray $(filter-out local,$(RAY)))

search: $(STAMP)  ## search the index: make search Q="who mediated the meeting"
	$(BIN)/docqa search "$(Q)" --index "$(INDEX)"

ask: $(STAMP)  ## answer a question with sources: make ask Q="who mediated the meeting?"
	$(BIN)/docqa ask "$(Q)" --index "$(INDEX)"

summarize: $(STAMP)  ## summarise the whole collection (DOC=id for one document)
	$(BIN)/docqa summarize $(if $(DOC),"$(DOC)") --index "$(INDEX)"

check: $(STAMP)  ## check that the index agrees with itself (vectors, chunks, BM25, manifest)
	$(BIN)/docqa check --index "$(INDEX)"

test: $(STAMP)  ## lint, then run every test, the default 1.5B model's included (what CI runs)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)  ## the tests without the default generator and the browser
	$(BIN)/python -m pytest -q -m "not slow and not browser"

eval: $(STAMP)  ## measure retrieval, support and question checks, answers (int4 beside transformers), refusals, follow-ups, injections, summaries (33-84 min on a 2-core AVX512 CPU; longer on AVX2-only ones); writes reports/eval.*
	$(BIN)/python -m evaluation --data $(EVAL_DATA)

eval-smoke: $(STAMP)  ## the same harness on tiny samples with the small model, contradiction and injection sets included (CI runs it)
	$(BIN)/python -m evaluation --smoke --data $(EVAL_DATA)

# llama.cpp (the bench's reference) is compiled for the vector units this CPU lists, never for AMX:
# a virtual machine may list AMX that its kernel does not let a process use (llama.cpp's AMX code
# then dies of an illegal instruction). Not from pip's cache: a wheel built on another CPU may not run here.
LLAMA_CPU_FLAGS := $(shell grep -m1 -ow -e avx -e avx2 -e fma -e f16c -e bmi2 -e avx512f -e avx512_vnni -e avx512_bf16 -e avx_vnni /proc/cpuinfo 2>/dev/null | sort -u | sed 's/avx512f/avx512/' | tr a-z A-Z)
LLAMA_CMAKE := -DGGML_NATIVE=OFF $(foreach f,AVX AVX2 FMA F16C BMI2 AVX512 AVX512_VNNI AVX512_BF16 AVX_VNNI,-DGGML_$(f)=$(if $(filter $(f),$(LLAMA_CPU_FLAGS)),ON,OFF))

bench: $(STAMP)  ## time docqa against the bare model and FAISS calls; writes reports/bench.*
	$(BIN)/python -c "import llama_cpp" 2>/dev/null || CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/python -m pip install --quiet --no-cache-dir -e '.[bench]' || echo "llama-cpp-python did not build: the llama.cpp reference is skipped"
	$(BIN)/python -m bench --data $(EVAL_DATA)

stress: $(STAMP)  ## kill, fuzz, load and attack docqa (about 40 min); writes reports/reliability.*
	$(BIN)/python -m stress --data $(EVAL_DATA)

stress-ci: $(STAMP)  ## the smaller version of make stress that CI runs
	$(BIN)/python -m stress --ci --data $(EVAL_DATA)

lint: $(STAMP)  ## ruff lint and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:  ## remove the index and caches (keeps the virtual environment)
	rm -rf "$(INDEX)" .pytest_cache .ruff_cache
