# The commands the README names. `make run` and `make test` do all the set-up.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
INDEX  ?= data/index
HOST   ?= 127.0.0.1
PORT   ?= 7860

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: setup setup-browser run index test lint bench clean

# torch goes in first, pinned: the CPU wheel on this machine. Anything that pulls
# torch unpinned before it would bring a multi-GB CUDA build.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

index: setup
	$(BIN)/semantic-qa index data/articles --out $(INDEX)

run: index
	$(BIN)/semantic-qa serve --index $(INDEX) --host $(HOST) --port $(PORT)

# The browser tests drive Debian's chromium (never a Playwright download); we run as
# root in CI, so apt-get installs it when it is missing.
setup-browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium chromium-driver)

test: setup setup-browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/squad.py

clean:
	rm -rf $(VENV) $(INDEX) .pytest_cache .mypy_cache .ruff_cache
