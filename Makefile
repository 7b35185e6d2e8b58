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

.PHONY: setup setup-browser run index test lint bench bench-formats clean

# torch goes in first, pinned: the CPU wheel on this machine. Anything that pulls
# torch unpinned before it would bring a multi-GB CUDA build.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,milvus]'
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

# The suite runs in a private network namespace where loopback is the only interface:
# the Milvus server the tests start (tests/milvus_server.py) listens on all interfaces.
# Every other test is offline and binds 127.0.0.1, so it runs there as well.
NETNS = ip link set lo up && exec "$$0" "$$@"
test: setup setup-browser
	@if command -v ip >/dev/null && unshare -n true 2>/dev/null; then \
		unshare -n sh -c '$(NETNS)' $(BIN)/python -m pytest $(PYTEST_ARGS); \
	elif command -v ip >/dev/null && unshare -rn true 2>/dev/null; then \
		unshare -rn sh -c '$(NETNS)' $(BIN)/python -m pytest $(PYTEST_ARGS); \
	else \
		echo "make test: no private network namespace (unshare -n needs root, unshare -rn" \
			"user namespaces; ip from iproute2): running without one, so the Milvus" \
			"server tests are skipped (they fail under CI=true)" >&2; \
		$(BIN)/python -m pytest $(PYTEST_ARGS); \
	fi

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/squad.py

# PDF and Word articles vs text (BENCHMARKS.md): also installs the PDF readers it compares
bench-formats: setup
	$(BIN)/pip install --quiet -e '.[dev,milvus,bench-formats]'
	$(BIN)/python benchmarks/formats.py

clean:
	rm -rf $(VENV) $(INDEX) .pytest_cache .mypy_cache .ruff_cache
