# Two commands for a fresh machine (see README.md): `make quickstart` and `make test`.
# Both create .venv if absent and install into it once: the stamp file is remade only when
# pyproject.toml changes, so a second run installs nothing.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.imaginarium-installed
export TORCHDYNAMO_DISABLE := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install quickstart test

$(PY):
	python3 -m venv $(VENV)

# torch first: pip takes the local CPU wheel for the pinned version; an unpinned torch
# (as a dependency of the project) would pull several GB of CUDA packages.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The offline quickstart (recipes/quickstart.yaml): import the bundled example toolset and its
# response cache, then explore it with the embedded tiny model on CPU.
quickstart: install
	$(VENV)/bin/imaginarium run recipes/quickstart.yaml -o out/quickstart
	$(VENV)/bin/imaginarium cache stats out/quickstart/cache.sqlite

test: install
	$(VENV)/bin/python -m pytest -q
