"""The compose stack's Prometheus scrapes every service, and the Grafana dashboard only asks
for metrics the services export."""
from __future__ import annotations

import json
import re

import yaml

from deploy.embedded import REPO_ROOT, SERVICES
from shared import metrics

EXPORTED = {"oioo_lease_held", "oioo_dead_letters_total", "oioo_commit_seconds_bucket", "oioo_events_total",
            "oioo_published_total", *metrics.DOMAIN}


def test_prometheus_scrapes_every_service_on_its_health_port():
    config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{name}:8080" for name in SERVICES}
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    env = compose["x-env"]
    assert (env["HEALTH_PORT"], env["HEALTH_HOST"]) == ("8080", "0.0.0.0")


def test_the_grafana_dashboard_asks_only_for_exported_metrics():
    dash = json.loads((REPO_ROOT / "deploy/grafana/dashboards/oioo.json").read_text())
    names = {m for p in dash["panels"] for t in p["targets"] for m in re.findall(r"\boioo_[a-z_]+", t["expr"])}
    assert names and names <= EXPORTED, names - EXPORTED
    assert {"oioo_week_pairs_formed", "oioo_week_cap_remaining", "oioo_open_blockers", "oioo_holds",
            "oioo_dead_letters_total", "oioo_commit_seconds_bucket"} <= names
