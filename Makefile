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

QS := out/quickstart
quickstart: install
	$(VENV)/bin/imaginarium tools import recipes/example_toolset/python_tools.json recipes/example_toolset/openapi.yaml -o $(QS)/tools.jsonl
	$(VENV)/bin/imaginarium tools validate $(QS)/tools.jsonl
	$(VENV)/bin/imaginarium tools show $(QS)/tools.jsonl
	$(VENV)/bin/imaginarium cache import recipes/example_toolset/cache.jsonl --into $(QS)/cache.sqlite
	$(VENV)/bin/imaginarium cache stats $(QS)/cache.sqlite
	$(VENV)/bin/imaginarium tools call $(QS)/tools.jsonl add_date '{"date": "2024-02-27", "days": 3}'
	$(VENV)/bin/imaginarium tools call $(QS)/tools.jsonl get_current_weather '{"city": "Oslo"}' --cache $(QS)/cache.sqlite
	$(VENV)/bin/imaginarium tools call $(QS)/tools.jsonl get_exchange_rate '{"base": "EUR", "quote": "USD"}' --cache $(QS)/cache.sqlite

test: install
	$(VENV)/bin/python -m pytest -q
