# `make demo` and `make test` create the virtual environment themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install browser demo demo-check test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The workbench's browser tests drive Debian's chromium (never a downloaded browser).
# As root it is installed with apt; anyone else is told the one command to run.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing Debian's chromium for the workbench's browser tests ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "make test needs Debian's chromium (/usr/bin/chromium) for the browser tests:" >&2; \
	    echo "  sudo apt-get install chromium" >&2; \
	    echo "or run them as skipped, knowingly: PRUM_SKIP_BROWSER=1 .venv/bin/pytest" >&2; \
	    exit 1; \
	  fi; \
	fi

demo: install
	$(BIN)/prum demo

# The demo once, non-interactive: exits 1 if any of the five cases failed (CI runs it).
demo-check: install
	$(BIN)/prum demo --no-wait

test: install browser
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/face_pipeline.py
	$(BIN)/python bench/gallery_search.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
