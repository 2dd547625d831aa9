"""Drive the exchange directly, with a tiny stand-in for enforcement's biometric index."""
from __future__ import annotations

from services.matching.exchange import Exchange
from shared.events.inbound import ANY_INBOUND
from shared.events.internal import Screening
from shared.settings import Settings


class Harness:
    def __init__(self, **settings):
        self.ex = Exchange(Settings(**settings))
        self.people: dict[str, dict[str, list[str]]] = {}
        self.effects: list = []

    def send(self, doc: dict) -> list:
        screening = Screening()
        bio = doc.get("biometric_id")
        if bio:
            person = self.people.setdefault(bio, {"arrivals": [], "applications": [], "reports": []})
            t = doc["event_type"]
            if t == "ArrivalRecorded":
                screening = Screening(arrival_ids=list(person["arrivals"]), application_ids=list(person["applications"]))
                person["arrivals"].append(doc["arrival_id"])
            elif t == "ApplicationVetted":
                screening = Screening(arrival_ids=list(person["arrivals"]), report_ids=list(person["reports"]))
                person["applications"].append(doc["application_id"])
            elif t == "IllegalWorkingEncounter":
                screening = Screening(arrival_ids=list(person["arrivals"]), application_ids=list(person["applications"]))
                person["reports"].append(doc["report_id"])
        out = self.ex.apply(ANY_INBOUND.validate_python(doc), screening)
        self.effects.extend(out)
        return out

    def instructions(self, kind: str) -> list[dict]:
        return [e.data for e in self.effects if e.kind == "instruction" and e.data["kind"] == kind]

    def decisions(self, subject: str | None = None, decision: str | None = None) -> list[dict]:
        return [e.data for e in self.effects if e.kind == "decision"
                and (subject is None or e.data["subject_ref"] == subject)
                and (decision is None or e.data["decision"] == decision)]

    def alerts(self, kind: str) -> list[dict]:
        return [e.data for e in self.effects if e.kind == "alert" and e.data["kind"] == kind]

    def balance(self, week: str) -> dict:
        return self.ex.figures(week)

    def requests(self) -> dict[str, str]:
        """arrival_id -> request_id of each RequestReturn so far."""
        return {d["arrival_id"]: d["request_id"] for d in self.instructions("RequestReturn")}
