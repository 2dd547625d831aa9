"""The dashboard's and the CLI's figures, folded from ops documents."""
from __future__ import annotations

from services.ops import health
from services.ops.figures import BALANCE_FIELDS, Board, latest_balances, order_alerts, this_week
from services.enforcement.app import Enforcement
from services.intake.app import Intake
from services.matching.app import Matching
from services.transfer.app import Transfer
from shared import topics as T


def balance(week: str, **figures) -> dict:
    base = {n: 0 for n in BALANCE_FIELDS}
    base.update(week=week, cap=50, admissions_paused=False, event_type="WeeklyBalance")
    base.update(figures)
    return base


def decision(subject: str, decision: str, *reasons: str) -> dict:
    return {"event_type": "Decision", "subject_ref": subject, "decision": decision, "reasons": list(reasons)}


def test_the_latest_balance_per_week_wins_and_this_week_is_the_latest_week():
    docs = [balance("2025-W36", pairs_formed=1), balance("2025-W37", pairs_formed=4),
            balance("2025-W36", pairs_formed=2)]  # a late event republished W36
    latest = latest_balances(docs)
    assert list(latest) == ["2025-W36", "2025-W37"] and latest["2025-W36"]["pairs_formed"] == 2
    assert this_week(latest) == "2025-W37" and this_week({}) is None


def test_alerts_critical_first_then_newest_first():
    alerts = [{"severity": "info", "kind": "a"}, {"severity": "critical", "kind": "b"},
              {"severity": "warning", "kind": "c"}, {"severity": "critical", "kind": "d"}]
    assert [a["kind"] for a in order_alerts(alerts)] == ["d", "b", "c", "a"]
    assert [a["kind"] for a in order_alerts(alerts, 1)] == ["d"]


def test_board_counts_holds_until_they_end_and_applications_by_stage():
    board = Board()
    for doc in (decision("R1", "held", "legal_challenge_pending"), decision("R2", "held", "absconded"),
                decision("R1", "hold_lifted", "blockers_resolved_against_person"),
                decision("P1", "blocked", "awaiting_vetting"), decision("P1", "eligible", "vetted_clear"),
                decision("P2", "blocked", "awaiting_vetting"), decision("P2", "paired", "request_R2"),
                decision("P3", "refused_admission", "security_refused"),
                decision("A1", "eligible", "no_open_blocker"), decision("A1", "paired", "within_weekly_cap")):
        board.take(T.OPS_AUDIT, doc)
    state = board.snapshot()
    assert state["returns"]["on_hold"] == 1
    assert state["admissions"]["stages"] == {"waiting": 0, "ready": 1, "paired": 1, "offered": 0, "arrived": 0,
                                             "refused": 1, "withdrawn": 0}


def test_board_takes_this_week_from_balances_and_cumulative_from_the_latest_published():
    board = Board()
    board.take(T.OPS_BALANCE, balance("2025-W37", cap=3, pairs_formed=2, returns_executed=1,
                                      cumulative_returns_executed=5, cumulative_admissions_offered=4))
    board.take(T.OPS_BALANCE, balance("2025-W36", returns_executed=4, cumulative_returns_executed=6,
                                      cumulative_admissions_offered=4))
    board.take(T.OPS_DEAD_LETTERS, {"event_type": "DeadLetter", "error_code": "schema"})
    board.take(T.OPS_DEAD_LETTERS, {"event_type": "DeadLetter", "error_code": "schema"})
    state = board.snapshot()
    assert (state["week"], state["cap"], state["pairs_formed"]) == ("2025-W37", 3, 2)
    assert state["returns"]["scheme"]["returns_executed"] == 5
    assert state["cumulative"] == {"returns_executed": 6, "admissions_offered": 4}
    assert state["dead_letters"] == {"schema": 2}
    assert [w["week"] for w in state["weeks"]] == ["2025-W36", "2025-W37"]


def test_lag_groups_are_the_services_own_groups_and_inputs():
    services = {"intake": Intake, "enforcement": Enforcement, "matching": Matching, "transfer": Transfer}
    assert health.GROUP_INPUTS == {f"oioo-{name}": tuple(cls.input_topics) for name, cls in services.items()}


async def test_readiness_asks_each_instance_readyz():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/ok/readyz" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        got = await health.readiness({"matching": f"{base}/ok", "matching-standby": f"{base}/standby",
                                      "transfer": "http://127.0.0.1:9"})
    finally:
        server.shutdown()
        server.server_close()
    assert [(r.instance, r.ready) for r in got] == [("matching", True), ("matching-standby", False),
                                                    ("transfer", False)]
    assert got[1].detail == "HTTP 503" and got[2].detail.startswith("unreachable")
