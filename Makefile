# tintline — two commands for a new user: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
APT_PACKAGES := openclipart-png renpy-demo
APT_MARK := /usr/share/openclipart/png /usr/share/games/renpy/demo/game/images

.PHONY: demo test lint setup corpus browser bench-data clean

setup: $(STAMP)

# The venv is rebuilt when pyproject.toml changes. torch==2.13.0 is pinned (CPU build).
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	@if $(PIP) list 2>/dev/null | grep -qi '^torchvision '; then echo "error: torchvision got installed; it must not be" >&2; exit 1; fi
	@touch $(STAMP)

# The built-in corpus: Debian packages, installed with apt-get when missing (needs root).
corpus:
	@missing=0; for d in $(APT_MARK); do test -d "$$d" || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing the built-in corpus: $(APT_PACKAGES)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

# A character the project never trains on, for benchmarks/character.py: Sylvie of Ren'Py's "The Question".
bench-data: corpus
	@if [ ! -d /usr/share/games/renpy/the_question/game/images ]; then \
	  echo "installing renpy-thequestion (an unseen character for the benchmarks)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq renpy-thequestion >/dev/null; \
	fi

# Debian's Chromium for the browser tests (Playwright drives it; no browser is ever downloaded).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing chromium for the browser tests"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

demo: setup corpus
	$(VENV)/bin/tintline demo

test: setup corpus browser
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) tintline-demo
