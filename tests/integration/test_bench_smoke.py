"""`make bench` runs end to end at a tiny size and writes every figure the issue asks for.

A benchmark is a measurement: nothing here checks a timing, only that the run completes, that
each figure is there with a sane type, and that what the bench claims to have waited for
happened (every replayed and every latency arrival has its Decision on ops.audit.v1).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RATES = ("ceiling_rate", "replay_rate", "pairing_rate", "quota_ops", "incr_ops",
         "intake_alone_rate", "enforcement_alone_rate", "matching_alone_rate", "transfer_alone_rate")
MILLISECONDS = ("p50_decision_ms", "p99_decision_ms", "p99_pair_ms", "fresh_p50_decision_ms", "fresh_p99_decision_ms")


def test_bench_smoke_run_writes_every_figure(tmp_path, embedded_binaries):
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "deploy.bench", "--arrivals", "300", "--latency-seconds", "2",
                          "--quota-seconds", "0.3", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(out.read_text())

    for key in RATES:
        assert isinstance(figures[key], (int, float)) and figures[key] > 0, key
    for key in MILLISECONDS:
        assert isinstance(figures[key], (int, float)) and figures[key] >= 0, key
    assert figures["replay_arrivals"] == 300
    assert isinstance(figures["replay_seconds"], float) and figures["replay_seconds"] > 0
    assert figures["replay_ratio"] == pytest.approx(figures["replay_rate"] / figures["ceiling_rate"], rel=1e-2)
    assert isinstance(figures["scaleout_replay_seconds"], float) and figures["scaleout_replay_seconds"] > 0
    assert set(figures["peak_rss_mb"]) == {"intake", "enforcement", "matching", "transfer"}
    assert all(isinstance(mb, float) and mb > 0 for mb in figures["peak_rss_mb"].values())
    # what the bench waited for did happen
    assert figures["replay_arrivals_decided"] == 300
    sizes = figures["replay_topic_records"]
    assert sizes["internal.intake.accepted.v1"] == sizes["internal.enforcement.screened.v1"] == figures["replay_events"]
    assert sizes["ops.dead-letters.v1"] == 0
    assert figures["latency_decided"] == figures["latency_arrivals"] > 0
    assert figures["latency_paired"] > 0
    assert figures["fresh_latency_decided"] == figures["fresh_latency_arrivals"] > 0
    assert "ceiling" in run.stdout and "replay_rate" in run.stdout


async def test_the_bench_publisher_puts_each_record_where_a_plain_send_would(infra):
    """The bench builds record batches itself; every record must still land on the partition
    the producer's default partitioner gives its key, in order, with its headers."""
    from aiokafka import AIOKafkaConsumer

    from deploy.bench.__main__ import Publisher
    from shared import topics as T

    recs = [(T.BORDER_ARRIVALS, f"A{i:05d}", f'{{"n":{i}}}'.encode(), [("x-sig", f"s{i}".encode())]) for i in range(900)]
    async with Publisher(infra.bootstrap) as pub:
        await pub.send_all(recs, chunk=250)
        expected = {key: pub.producer._partition(topic, None, None, None, key.encode(), None)
                    for topic, key, _, _ in recs}
    consumer = AIOKafkaConsumer(T.BORDER_ARRIVALS, bootstrap_servers=infra.bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got = []
    try:
        while len(got) < len(recs):
            for records in (await consumer.getmany(timeout_ms=2000)).values():
                got.extend(records)
    finally:
        await consumer.stop()
    assert len(got) == len(recs)
    assert {r.key.decode(): r.partition for r in got} == expected
    assert len(set(expected.values())) > 1  # the keys did spread over the partitions
    for partition in set(expected.values()):
        mine = [r for r in got if r.partition == partition]
        assert [int(json.loads(r.value)["n"]) for r in mine] == sorted(int(json.loads(r.value)["n"]) for r in mine)
    assert all(dict(r.headers)["x-sig"] == f"s{json.loads(r.value)['n']}".encode() for r in got)


def test_restore_bench_smoke_run_restarts_each_service_and_measures_a_saved_state(tmp_path, embedded_binaries):
    rdb, after, inproc = tmp_path / "state.rdb", tmp_path / "restart.json", tmp_path / "restore.json"
    run = subprocess.run([sys.executable, "-m", "deploy.bench.restore", "--arrivals", "200", "--save", str(rdb),
                          "--out", str(after)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(after.read_text())
    services = {"intake", "enforcement", "matching", "transfer"}
    assert figures["arrivals"] == 200 and set(figures["restart"]) == services
    for got in figures["restart"].values():
        assert got["peak_mb"] >= got["active_rss_mb"] > 0 and got["seconds_to_active"] > 0
    assert figures["redis_records"]["enforcement"] > 0

    run = subprocess.run([sys.executable, "-m", "deploy.bench.restore", "--rdb", str(rdb), "--out", str(inproc)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    restored = json.loads(inproc.read_text())["restore"]
    assert set(restored) == services
    for service, got in restored.items():
        # the saved state is the one the replay left: the same records, each loaded
        assert got["records"] == figures["redis_records"][service]
        assert got["peak_mb"] >= got["settled_mb"] > 0
