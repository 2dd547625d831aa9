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

.PHONY: install test unit integration demo chaos up down status bench compose-check topics-json k8s-topics acls secrets docs browser

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

# The demo's weeks through two instances of every service while they, the broker and Redis are
# broken; compares what was published with a fault-free run. CHAOS_ARGS=--short for the CI size.
chaos: $(STAMP)
	$(PY) -m deploy.chaos $(CHAOS_ARGS)

# STANDBY=1: a second instance of every service (intake-2, ...), a hot standby.
# INTAKE_SHARDS=2 / ENFORCEMENT_SHARDS=2: intake / enforcement in two shards (shared/shards.py).
up: $(STAMP)
	$(PY) -m deploy.stack up $(if $(filter-out 0 no false,$(STANDBY)),--standby) $(if $(INTAKE_SHARDS),--intake-shards $(INTAKE_SHARDS)) $(if $(ENFORCEMENT_SHARDS),--enforcement-shards $(ENFORCEMENT_SHARDS))

down: $(STAMP)
	$(PY) -m deploy.stack down

status: $(STAMP)
	$(PY) -m deploy.stack status

bench: $(STAMP)
	$(PY) -m deploy.bench

# deploy/topics.json feeds the production topic creation; it is generated from shared.topics.
topics-json: $(STAMP)
	$(PY) -m shared.topics > deploy/topics.json

# deploy/k8s/kafka/topics.yaml (Strimzi KafkaTopics) is generated from deploy/topics.json.
k8s-topics: $(STAMP)
	$(PY) -m deploy.k8s_topics > deploy/k8s/kafka/topics.yaml

# deploy/compose/kafka-acls.sh (the compose step that sets Kafka users and ACLs) is generated
# from deploy/acls.py.
acls: $(STAMP)
	$(PY) -m deploy.acls script

# Certificates, passwords and the signing keyring of a new deployment, into .secrets/ (git-ignored;
# OIOO_SECRETS_DIR=... for another directory). Creates only what is missing. See deploy/secrets.py.
secrets: $(STAMP)
	$(PY) -m deploy.secrets

# docker-compose.yml renders (offline; no Docker engine needed). CI installs docker-compose
# (.ci/run); elsewhere: apt-get install docker-compose.
compose-check:
	@if command -v docker-compose >/dev/null 2>&1; then \
		docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid"; \
	else \
		echo "docker-compose is not installed (apt-get install docker-compose); skipping the check"; \
	fi

# docs/asyncapi/<service>.json, generated from each service's FastStream app (tests fail when stale).
docs: $(STAMP)
	$(PY) -m deploy.asyncapi
