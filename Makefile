# One place for setting up, running and testing cloudvol. `make run` and `make test`
# each do the whole set-up on a fresh Debian 12 machine (as root). Each installs only
# what it needs (packaging/debian/install-packages.sh): `make run` never installs,
# upgrades or removes a Docker engine.

VENV     ?= .venv
PY       := $(VENV)/bin/python
PACKAGES := sh packaging/debian/install-packages.sh
ARGS     ?= -v
# The integration tests mostly wait (on dockerd, sshd, FUSE, uploads): three pytest
# workers, each module on one worker (its module fixtures stay whole), keep a full
# run well inside CI's time on 2 cores (four loaded it enough to time calls out).
# XDIST= runs them one at a time.
XDIST    ?= -n 3 --dist loadfile

.PHONY: install install-test run test lint unit integration bench soak clean

# The venv for the daemon alone, and the same venv with the test tools added.
$(VENV)/.installed-run: pyproject.toml
	$(PACKAGES) run
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	$(PACKAGES) test
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# Azurite, the Azure Blob server of the azureblob tests, is on npm only.
	npm install -q --prefix $(VENV)/azurite --no-audit --no-fund azurite@3
	touch $(VENV)/.installed-run $@

install: $(VENV)/.installed-run

install-test: $(VENV)/.installed-test

# Docker is the operator's: without it the daemon still serves its socket, and Docker
# finds it there once it runs.
run: install
	@command -v dockerd >/dev/null 2>&1 || command -v docker >/dev/null 2>&1 || \
	    echo "cloudvol: no Docker engine found on this host; serving the plugin socket anyway"
	$(VENV)/bin/cloudvol serve docker $(ARGS)

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: install-test
	$(PY) -m pytest -q tests/unit

integration: install-test
	$(PY) -m pytest -q $(XDIST) tests/integration

test: lint
	$(PY) -m pytest -q $(XDIST) tests

bench: install-test
	$(PACKAGES) bench
	$(PY) bench/run.py

# A 30-minute soak (not in CI): memory and descriptors of every process at start and end.
soak: install-test
	$(PY) bench/soak.py --minutes 30

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The Docker managed plugin (as root): build/plugin/{config.json,rootfs/} from Debian 12
# packages and PyPI (packaging/plugin/build.py), then `docker plugin create` against
# $DOCKER_HOST or the default socket. It is left disabled: set its mounts, then enable.
PLUGIN_NAME ?= cloudvol

.PHONY: plugin
plugin:
	@command -v mmdebstrap >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y --no-install-recommends --no-remove mmdebstrap; }
	python3 packaging/plugin/build.py build/plugin
	docker plugin create $(PLUGIN_NAME) build/plugin
