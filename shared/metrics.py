"""Prometheus metrics of the runtime every service shares (served on /metrics by shared/health.py).
FastStream's KafkaPrometheusMiddleware adds the broker-level figures to the same registry."""
from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

_LEASE = Gauge("oioo_lease_held", "1 while this instance holds its service's lease", ["service"])
_DEAD = Counter("oioo_dead_letters_total", "Records dead-lettered by this instance", ["service", "code"])
_COMMIT = Histogram("oioo_commit_seconds", "Time of one batch's Redis commit script", ["service"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
_RECORDS = Counter("oioo_events_total", "Input events taken for the first time", ["service"])
_PUBLISHED = Counter("oioo_published_total", "Outbound messages the relay published", ["service"])


class _ByCode:
    """Dead letters by code, for one service."""

    def __init__(self, service: str):
        self.service = service

    def labels(self, code: str):
        return _DEAD.labels(service=self.service, code=code)


@dataclass
class ServiceMetrics:
    lease: Gauge
    dead_letters: _ByCode
    commit_seconds: Histogram
    records: Counter
    published: Counter


def for_service(name: str) -> ServiceMetrics:
    return ServiceMetrics(
        lease=_LEASE.labels(service=name),
        dead_letters=_ByCode(name),
        commit_seconds=_COMMIT.labels(service=name),
        records=_RECORDS.labels(service=name),
        published=_PUBLISHED.labels(service=name),
    )


# The scheme's own figures, set by the service that knows them (matching) after each batch.
DOMAIN = {
    "oioo_week_pairs_formed": Gauge("oioo_week_pairs_formed", "Live pairs formed in the current week", ["week"]),
    "oioo_week_cap_remaining": Gauge("oioo_week_cap_remaining", "Pairs the current week's cap still allows",
                                     ["week"]),
    "oioo_open_blockers": Gauge("oioo_open_blockers", "Cases waiting behind an open blocker, by reason", ["reason"]),
    "oioo_holds": Gauge("oioo_holds", "Removals on hold (a blocker opened after the request)", []),
}


def set_figures(figures: list[tuple[str, dict[str, str], float]]) -> None:
    """Replace the domain gauges with a service's latest figures (name, labels, value)."""
    by_name: dict[str, list] = {}
    for name, labels, value in figures:
        by_name.setdefault(name, []).append((labels, value))
    for name, rows in by_name.items():
        gauge = DOMAIN[name]
        if gauge._labelnames:
            gauge.clear()
            for labels, value in rows:
                gauge.labels(**labels).set(value)
        else:
            gauge.set(rows[-1][1])
