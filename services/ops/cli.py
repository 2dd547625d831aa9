"""`oioo`: the operators' command line. Reads the running system from its ops topics and the
services' consumer groups, and acts on it only through signed events on ops.control.v1.

The stack is found in `.run/stack.env` (written by `make up`), or the file given with --env.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from services.ops import dead_letters as letters
from services.ops import explain as ex
from services.ops import figures, health, stack_env
from services.ops.control import Refused, control_event, operator_key, publish_control, send
from services.ops.report import write_report
from services.ops.topics_reader import read_all, read_one, latest_time
from services.ops import whatif as wi
from services.ops.whatif_history import DEMO_HISTORY, BadHistory, load_history, read_history, write_history
from shared.settings import Settings
from shared import topics as T

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The operators' command line for the one in, one out exchange.")
cap_app = typer.Typer(no_args_is_help=True, help="The weekly cap on pairs.")
admissions_app = typer.Typer(no_args_is_help=True, help="Pause or resume new pairs (offers for executed returns still go out).")
letters_app = typer.Typer(no_args_is_help=True, help="Records set aside by the services, and replaying them.")
app.add_typer(cap_app, name="cap")
app.add_typer(admissions_app, name="admissions")
app.add_typer(letters_app, name="dead-letters")

out = Console()
err = Console(stderr=True)
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


class Fail(Exception):
    """Stop with a message and a non-zero exit."""


def _env(ctx: typer.Context) -> dict[str, str]:
    if ctx.obj.get("env") is None:
        raise Fail(ctx.obj["no_stack"])
    return ctx.obj["env"]


def _time(text: str | None, env: dict[str, str]) -> datetime:
    """The control's event time: --at if given ("now" is the wall clock), else the system's
    own event time (the latest on its ops topics), so a control never moves its clock."""
    if text == "now":
        return datetime.now(timezone.utc)
    if text:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise Fail(f"--at {text!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise Fail("--at needs an offset, e.g. 2025-09-01T09:00:00+00:00")
        return when
    system_now = asyncio.run(latest_time(env["KAFKA_BOOTSTRAP_SERVERS"], (T.OPS_AUDIT, T.OPS_BALANCE)))
    if system_now is None:
        err.print("the system has published nothing yet: using the wall clock as the event time")
        return datetime.now(timezone.utc)
    return system_now


@app.callback()
def main_options(ctx: typer.Context,
                 env: Optional[Path] = typer.Option(None, "--env", help="stack env file (default .run/stack.env)")):
    try:
        ctx.obj = {"env": stack_env.load(env)}
    except stack_env.NoStack as exc:
        # said when a command needs the stack: `whatif --input FILE` does not
        ctx.obj = {"env": None, "no_stack": str(exc)}


# --------------------------------------------------------------------------- status

@app.command()
def status(ctx: typer.Context, alerts: int = typer.Option(10, help="how many alerts to show")):
    """This week's balance, the latest alerts (critical first), each service's lag and health."""
    env = _env(ctx)
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]

    async def gather():
        recs = await read_all(bootstrap, (T.OPS_BALANCE, T.OPS_ALERTS))
        lag = await health.consumer_lag(bootstrap, health.groups_for(env))
        ready = await health.readiness(stack_env.health_urls(env))
        return recs, lag, ready

    recs, lag, ready = asyncio.run(gather())
    balances = figures.latest_balances(r.doc or {} for r in recs if r.topic == T.OPS_BALANCE)
    week = figures.this_week(balances)
    if week is None:
        out.print("[bold]This week:[/] no WeeklyBalance published yet")
    else:
        b = balances[week]
        t = Table(title=f"This week: {week}" + ("  (admissions PAUSED)" if b.get("admissions_paused") else ""))
        t.add_column("figure")
        t.add_column("value", justify="right")
        for name in figures.BALANCE_FIELDS[1:]:
            t.add_row(name.replace("_", " "), str(b.get(name)))
        out.print(t)
    shown = figures.order_alerts((r.doc for r in recs if r.topic == T.OPS_ALERTS and r.doc), alerts)
    t = Table(title=f"Latest alerts (critical first), {len(shown)} shown")
    for col in ("severity", "kind", "subject", "time", "message"):
        t.add_column(col)
    for a in shown:
        sev = str(a.get("severity"))
        t.add_row(f"[{SEVERITY_STYLE.get(sev, '')}]{sev}[/]", str(a.get("kind")), str(a.get("subject_ref")),
                  str(a.get("occurred_at")), str(a.get("message")))
    out.print(t)
    t = Table(title="Services: consumer lag (committed vs end offsets)")
    for col in ("group", "committed", "end", "lag"):
        t.add_column(col, justify="right" if col != "group" else "left")
    for g in lag:
        note = f" ({g.never_committed} partition(s) never committed)" if g.never_committed else ""
        t.add_row(g.group, str(g.committed), str(g.end), f"{g.lag}{note}")
    out.print(t)
    if ready:
        t = Table(title="Services: readiness (/readyz)")
        for col in ("instance", "ready", "detail"):
            t.add_column(col)
        for r in ready:
            t.add_row(r.instance, "[green]ready[/]" if r.ready else "[red]NOT READY[/]", r.detail)
        out.print(t)
    else:
        out.print("readiness: no HEALTH_URLS in the stack env; not checked")
    if env.get("REDIS_URL"):
        out.print(f"redis: {asyncio.run(health.redis_answers(env['REDIS_URL']))}")


# --------------------------------------------------------------------------- explain

@app.command()
def explain(ctx: typer.Context, subject: str = typer.Argument(..., help="arrival_id, application_id or request_id"),
            as_json: bool = typer.Option(False, "--json", help="the chain as JSON")):
    """Every Decision about a subject, in order, with the other side of each pair it was in."""
    bootstrap = _env(ctx)["KAFKA_BOOTSTRAP_SERVERS"]
    recs = asyncio.run(read_all(bootstrap, (T.OPS_AUDIT, T.LIAISON_UK_RETURN_REQUESTS)))
    audit = ex.Audit(
        (ex.Entry(r.doc, r.partition, r.offset) for r in recs if r.topic == T.OPS_AUDIT and r.doc),
        # ids only: the request's particulars are never read out
        ({"request_id": d.get("request_id"), "arrival_id": d.get("arrival_id")}
         for d in (r.doc for r in recs if r.topic == T.LIAISON_UK_RETURN_REQUESTS) if d
         and d.get("event_type") == "ReturnRequested"))
    chain = audit.explain(subject)
    rows = ex.lines(chain)
    if as_json:
        print(json.dumps({"subject": chain.subject, "kind": chain.kind, "arrivals": chain.arrivals,
                          "applications": chain.applications, "requests": chain.requests,
                          "see_also": chain.see_also, "decisions": rows}, indent=2))
    else:
        for sentence in ex.summary(chain):
            out.print(sentence, soft_wrap=True, markup=False)
        # numbered paragraphs rather than a table: they read the same in a terminal, a letter or a court bundle
        for n, r in enumerate(rows, 1):
            out.print(f"\n[bold]{n}. {r['time']}: {r['subject']} {r['decision']}[/]", highlight=False, soft_wrap=True)
            out.print(f"   reasons: {r['reasons']}", highlight=False, markup=False, soft_wrap=True)
            out.print(f"   rule version {r['rule_version']}; caused by event {r['caused_by']}", highlight=False,
                      markup=False, soft_wrap=True)
    if chain.kind == "unknown":
        raise typer.Exit(1)


# --------------------------------------------------------------------------- controls

def _control(ctx: typer.Context, key_id: str | None, at: str | None, event_type: str, **fields) -> None:
    env = _env(ctx)
    key = operator_key(env.get("SIGNING_KEYS_FILE"), key_id)
    doc = control_event(event_type, _time(at, env), **fields)
    md = asyncio.run(publish_control(env["KAFKA_BOOTSTRAP_SERVERS"], key, doc))
    out.print(f"{event_type} sent, signed with {key.key_id}: event_id {doc['event_id']}, event time "
              f"{doc['occurred_at']} ({md.topic} partition {md.partition} offset {md.offset})")


KEY_ID = typer.Option(None, "--key-id", help="operator key id (default: the keyring's key for ops.control.v1)")
AT = typer.Option(None, "--at", help="event time (ISO 8601 with offset, or 'now'); default: the system's event time")


@cap_app.command("set")
def cap_set(ctx: typer.Context, week: str = typer.Argument(..., help="ISO week, e.g. 2025-W36"),
            cap: int = typer.Argument(..., help="pairs allowed that week (0 or more)"),
            key_id: Optional[str] = KEY_ID, at: Optional[str] = AT):
    """Publish WeeklyCapSet for a week."""
    _control(ctx, key_id, at, "WeeklyCapSet", week=week, cap=cap)


@admissions_app.command("pause")
def admissions_pause(ctx: typer.Context, reason: str = typer.Option(..., "--reason", help="why, for the record"),
                     key_id: Optional[str] = KEY_ID, at: Optional[str] = AT):
    """Publish AdmissionsPaused: no new pairs until resumed."""
    _control(ctx, key_id, at, "AdmissionsPaused", reason=reason)


@admissions_app.command("resume")
def admissions_resume(ctx: typer.Context, reason: str = typer.Option("operator", "--reason", help="why, for the record"),
                      key_id: Optional[str] = KEY_ID, at: Optional[str] = AT):
    """Publish AdmissionsResumed."""
    _control(ctx, key_id, at, "AdmissionsResumed", reason=reason)


# --------------------------------------------------------------------------- dead letters

async def _letters(bootstrap: str) -> list:
    return [r for r in await read_all(bootstrap, (T.OPS_DEAD_LETTERS,))
            if r.doc and r.doc.get("event_type") == "DeadLetter"]


@letters_app.command("list")
def letters_list(ctx: typer.Context, code: Optional[str] = typer.Option(None, help="only this error code"),
                 as_json: bool = typer.Option(False, "--json")):
    """Dead letters: id, code, source topic, partition, offset, size (never the raw value)."""
    found = [letters.row(r.doc) for r in asyncio.run(_letters(_env(ctx)["KAFKA_BOOTSTRAP_SERVERS"]))]
    found = [r for r in found if code is None or r.error_code == code]
    if as_json:
        print(json.dumps([asdict(r) for r in found], indent=2))
        return
    t = Table(title=f"{len(found)} dead letter(s)")
    for col in ("id", "code", "topic", "partition", "offset", "size", "detail"):
        t.add_column(col, overflow="fold")
    for r in found:
        t.add_row(r.event_id, r.error_code, r.source_topic, str(r.partition), str(r.offset),
                  f"{r.raw_size}{' (cut)' if r.cut else ''}", r.error_detail)
    out.print(t)


@letters_app.command("replay")
def letters_replay(ctx: typer.Context, event_id: str = typer.Argument(..., help="the DeadLetter's event_id"),
                   key_id: Optional[str] = KEY_ID):
    """Publish a dead-lettered record again to its source topic (after the cause is fixed)."""
    env = _env(ctx)
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    match = [r for r in asyncio.run(_letters(bootstrap)) if r.doc.get("event_id") == event_id]
    if not match:
        raise Fail(f"no dead letter with id {event_id}")
    rec = match[-1]
    letter = rec.doc
    # an operator's command like any other: no operator key, no replay (it signs only where allowed)
    operator = operator_key(env.get("SIGNING_KEYS_FILE"), key_id)
    original = asyncio.run(read_one(bootstrap, str(letter.get("source_topic")), int(letter.get("partition", -1)),
                                    int(letter.get("offset", -1))))
    plan = letters.plan_replay(letter, rec.key, original, operator)
    md = asyncio.run(send(bootstrap, plan.topic, plan.key, plan.value, plan.headers, plan.partition))
    how = ("re-signed with " + operator.key_id) if plan.resigned else (
        "with its original headers" if plan.original_headers else "without its original headers (source record gone)")
    out.print(f"replayed {letter.get('error_code')} dead letter {event_id} to {md.topic} partition {md.partition} "
              f"offset {md.offset}, {how}")


# --------------------------------------------------------------------------- report

@app.command()
def report(ctx: typer.Context, first: str = typer.Option(..., "--from", help="first ISO week, e.g. 2025-W36"),
           last: str = typer.Option(..., "--to", help="last ISO week"),
           out_dir: Path = typer.Option(Path("."), "--out", help="directory for the CSV and the PNG")):
    """Joint Committee report: weekly figures (CSV) and chart (PNG) from ops.balance.v1."""
    if first > last:
        raise Fail(f"--from {first} is after --to {last}")
    recs = asyncio.run(read_all(_env(ctx)["KAFKA_BOOTSTRAP_SERVERS"], (T.OPS_BALANCE,)))
    balances = figures.latest_balances(r.doc for r in recs if r.doc)
    written = write_report(out_dir, balances, first, last)
    if not written.weeks:
        err.print(f"no WeeklyBalance was published for {first}..{last}; the report is empty")
    out.print(f"{len(written.weeks)} week(s) written: {written.csv} and {written.png}")


# --------------------------------------------------------------------------- what-if

def _read_history(bootstrap: str):
    """The history now, and a word if matching or transfer has not caught up with its input:
    what they have still to decide is in the input but not yet published."""
    async def gather():
        history = await read_history(bootstrap)
        groups = {g: t for g, t in health.GROUP_INPUTS.items() if g in ("oioo-matching", "oioo-transfer")}
        try:
            lag = await health.consumer_lag(bootstrap, groups)
        except (KafkaError, TimeoutError, OSError):
            lag = []
        return history, lag

    history, lag = asyncio.run(gather())
    for g in lag:
        if g.lag:
            err.print(f"{g.group} has {g.lag} record(s) of its input not yet committed: it may still be deciding "
                      "them, and the baseline check would find their effects extra; try again once it is idle")
    return history


@app.command("export-history")
def export_history(ctx: typer.Context, out_file: Path = typer.Option(..., "--out", help="JSON-lines file to write")):
    """Matching's recorded input and what was published (audit, liaison.uk), for `whatif --input`."""
    history = _read_history(_env(ctx)["KAFKA_BOOTSTRAP_SERVERS"])
    n = write_history(out_file, history)
    out.print(f"{n} record(s) written to {out_file}: {len(history.inputs)} input, {len(history.published)} "
              "published (the file holds personal data as the topics do: it is readable by its owner only)",
              highlight=False)


def _history(ctx: typer.Context, input_file: Path | None):
    if input_file is not None:
        try:
            return load_history(input_file)
        except OSError as exc:
            raise Fail(f"--input {input_file}: {exc.strerror}") from None
        except BadHistory as exc:
            raise Fail(str(exc)) from None
    if ctx.obj.get("env") is None and DEMO_HISTORY.exists():
        err.print(f"no running stack: replaying the demo's history, {DEMO_HISTORY} (written by `make demo`)")
        return load_history(DEMO_HISTORY)
    return _read_history(_env(ctx)["KAFKA_BOOTSTRAP_SERVERS"])


@app.command()
def whatif(ctx: typer.Context,
           input_file: Optional[Path] = typer.Option(None, "--input", help="history file from `oioo export-history`"),
           cap: Optional[int] = typer.Option(None, "--cap", help="every week's cap (WeeklyCapSet overridden)"),
           cap_week: list[str] = typer.Option([], "--cap-week", help="WEEK=N, e.g. 2025-W41=30 (repeatable)"),
           priority: Optional[str] = typer.Option(None, "--priority", help="priority nationalities, e.g. ERI,AFG"),
           scheme_end: Optional[str] = typer.Option(None, "--scheme-end", help="the scheme's last day, YYYY-MM-DD"),
           window_days: Optional[int] = typer.Option(None, "--window-days", help="the request window, in days"),
           rule_version: Optional[str] = typer.Option(None, "--rule-version", help="rule set (only one exists)"),
           first: Optional[str] = typer.Option(None, "--from", help="first ISO week compared"),
           last: Optional[str] = typer.Option(None, "--to", help="last ISO week compared"),
           out_dir: Optional[Path] = typer.Option(None, "--out", help="directory for the CSVs and the PNG"),
           limit: int = typer.Option(50, "--limit", help="people listed on the terminal (the CSV has all)")):
    """Replay the recorded history under the settings in force (must reproduce what was published)
    and under other rules, and show what would change."""
    try:
        options = wi.Options(
            cap=cap, cap_weeks=wi.cap_weeks(cap_week),
            priority=wi.priority(priority) if priority is not None else None,
            scheme_end=wi.day(scheme_end, "--scheme-end") if scheme_end else None,
            window_days=window_days, rule_version=rule_version,
            first=wi.week(first, "--from") if first else None, last=wi.week(last, "--to") if last else None,
            out_dir=out_dir, limit=limit)
        wi.scenario(Settings.from_env(), options)  # refuse a bad option before reading anything
    except wi.Refused as exc:
        raise Fail(str(exc)) from None
    history = _history(ctx, input_file)
    if not history.inputs:
        raise Fail("the history holds no record of internal.enforcement.screened.v1: nothing to replay")
    code = wi.run(history, options, Settings.from_env(), out)
    if code:
        raise typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # an outage is reported once, below
    try:
        code = app(args=argv, standalone_mode=False)
    except (Fail, Refused) as exc:
        err.print(f"[bold red]oioo:[/] {exc}")
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        return 130
    except (KafkaError, TimeoutError, OSError) as exc:  # an outage: say so, without a traceback
        err.print(f"[bold red]oioo:[/] the broker did not answer ({exc.__class__.__name__}: {exc}); "
                  "is the stack up (`make up`)?")
        return 1
    except Exception as exc:  # click's usage errors carry their own message and exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
