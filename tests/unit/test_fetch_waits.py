"""Each consumer asks for what its place needs: the services between an arrival and its first
Decision (enforcement, matching) are prompt, their fetches held briefly; intake's merged input
of 28 partitions takes a little of every partition at a time at the usual wait; transfer waits
the usual (shared/settings.py has the measurements)."""
from __future__ import annotations

from services.enforcement.app import Enforcement
from services.intake.app import Intake
from services.matching.app import Matching
from services.transfer.app import Transfer
from shared import topics as T
from shared.runtime import Runner
from shared.settings import Settings
from shared.signing import Keyring


def _asks(service, settings: Settings) -> tuple[int, int, int]:
    sub = Runner(service, settings).subscriber
    args = sub._connection_args  # what FastStream hands to aiokafka's consumer
    return args["fetch_max_wait_ms"], sub.batch_timeout_ms, args["fetch_max_bytes"]


def _services(settings: Settings) -> dict:
    keyring = Keyring.from_mapping({"terminals": {"secret": "s", "topics": [T.BORDER_ARRIVALS]}})
    return {"intake": Intake(keyring), "enforcement": Enforcement(), "matching": Matching(settings),
            "transfer": Transfer()}


def test_the_hops_to_a_decision_are_prompt_and_the_merged_input_is_fetched_a_little_at_a_time():
    settings = Settings(fetch_max_wait_ms=20, batch_timeout_ms=5, prompt_fetch_max_wait_ms=5,
                        prompt_batch_timeout_ms=2, fetch_max_bytes=1 << 20, merge_fetch_bytes=1 << 18)
    asks = {name: _asks(service, settings) for name, service in _services(settings).items()}
    assert asks == {"intake": (20, 5, 1 << 18), "enforcement": (5, 2, 1 << 20),
                    "matching": (5, 2, 1 << 20), "transfer": (20, 5, 1 << 20)}


def test_the_waits_come_from_the_environment(monkeypatch):
    for name, value in {"FETCH_MAX_WAIT_MS": "30", "BATCH_TIMEOUT_MS": "6", "PROMPT_FETCH_MAX_WAIT_MS": "7",
                        "PROMPT_BATCH_TIMEOUT_MS": "3"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    services = _services(settings)
    assert _asks(services["matching"], settings)[:2] == (7, 3)
    assert _asks(services["transfer"], settings)[:2] == (30, 6)
