# Two entry points that work on a fresh clone: `make demo` and `make test`.
# Both create .venv, install torch (TORCH_SPEC, from TORCH_INDEX when set) and this package, and run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Which torch to install, and from where. Empty TORCH_INDEX = pip's default index (here a
# local wheel cache provides the CPU build); elsewhere pick the build explicitly, e.g.
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
#   make test TORCH_SPEC='torch==2.13.0' TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_PIP_ARGS := $(if $(strip $(TORCH_INDEX)),--index-url $(TORCH_INDEX),)

CHROMIUM := /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

.PHONY: install demo test test-slow test-all bench clean chromium web node client docs docs-serve

# The web client (viewer/web/): Node and npm from Debian when missing, then the packages
# pinned by package-lock.json (`npm ci`), then the bundles (esbuild).
WEB       := viewer/web
WEB_STAMP := $(WEB)/node_modules/.installed-stamp

node:
	@command -v node >/dev/null && command -v npm >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	$(MAKE) node
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEB_STAMP)

web: $(WEB_STAMP)
	cd $(WEB) && node build.mjs

# Rebuild the shipped web player (viewer/client/, package data) from viewer/web/; commit the
# result. `make test` checks that the committed files are exactly what this builds.
client: $(WEB_STAMP)
	cd $(WEB) && node build.mjs --out ../client

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH_PIP_ARGS) '$(TORCH_SPEC)'
	$(PIP) install -q -e '.[test,bench,features,open3d,ray,docs]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP) web
	$(PY) -m splat.demo -o demo_out

# Debian's Chromium for the headless browser tests (marked `browser`); a no-op when present.
# If it cannot be installed, those tests skip with a message saying so.
chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "warning: could not install chromium; browser tests will be skipped"

test: $(STAMP) chromium web
	$(PY) -m pytest -q -m "not slow and not cuda" $(PYTEST_ARGS)

test-slow: $(STAMP) chromium web
	$(PY) -m pytest -q -m "slow" $(PYTEST_ARGS)

test-all: $(STAMP) chromium web
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The documentation site (MkDocs + Material, API pages from the docstrings by mkdocstrings) into
# site/; --strict turns a broken link, a missing page or a page left out of the nav into an error.
# Result pages are generated from bench/results/ at build time (docs/hooks.py, docs/gen_results.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

bench: $(STAMP)
	$(PY) bench/render.py

clean:
	rm -rf $(VENV) demo_out site .pytest_cache $(WEB)/node_modules $(WEB)/dist
