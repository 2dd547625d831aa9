# Everything runs from the project's own venv, built from pyproject.toml (only python3 and make
# are needed on the machine). The venv is reinstalled only when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# pytest exits 5 when it collects no tests: not a failure for us.
define pytest
	$(PY) -m pytest -q $(1); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected in $(1)"; rc=0; fi; exit $$rc
endef

.PHONY: install test unit integration demo up down status bench compose-check topics-json browser

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

test: $(STAMP) browser
	$(call pytest,tests)

unit: $(STAMP)
	$(call pytest,tests/unit)

integration: $(STAMP) browser
	$(call pytest,tests/integration)

# The dashboard test drives Debian's headless Chromium (browser downloads are not possible
# here): install it and its driver when missing, as root (CI) or through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; else \
		echo "installing chromium and chromium-driver (Debian packages) for the dashboard test"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; \
	fi

demo: $(STAMP)
	$(PY) -m deploy.demo

up: $(STAMP)
	$(PY) -m deploy.stack up

down: $(STAMP)
	$(PY) -m deploy.stack down

status: $(STAMP)
	$(PY) -m deploy.stack status

bench: $(STAMP)
	$(PY) -m deploy.bench

# deploy/topics.json feeds the production topic creation; it is generated from shared.topics.
topics-json: $(STAMP)
	$(PY) -m shared.topics > deploy/topics.json

compose-check:
	@if command -v docker-compose >/dev/null 2>&1; then \
		docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid"; \
	else \
		echo "docker-compose is not installed (apt-get install docker-compose); skipping the check"; \
	fi
