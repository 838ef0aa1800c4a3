"""The one entry point: parse, call one service, render. No logic lives here.

Every command takes ``--home`` and ``--json``. Bad input prints one line on stderr and exits
2; a failed check exits 1. Run ``python cli.py --help`` (or ``sheratan --help``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

import click
import msgspec

from events.jobs import PRIORITIES
from projections.jobs import JobsView
from sheratan.app import InvalidInputError, NotFoundError
from sheratan.home import Home, HomeMissingError, init_home, resolve_home
from sheratan.lifecycle import IllegalTransitionError
from sheratan.render import emit_json, fields, table, to_plain
from sheratan.store.ledger import CorruptLogError
from sheratan.views import JOBS, MISSIONS, VIEW_KINDS

F = TypeVar("F", bound=Callable[..., Any])

#: Errors that mean "the input was wrong": one line on stderr, exit 2.
BAD_INPUT = (InvalidInputError, NotFoundError, HomeMissingError, IllegalTransitionError)
STATUSES = (
    "created",
    "queued",
    "dispatched",
    "running",
    "completed",
    "failed",
    "retry_scheduled",
    "timed_out",
    "cancelled",
    "quarantined",
)


class SheratanGroup(click.Group):
    """Turns every error into one clear line on stderr with the documented exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.ClickException as error:
            click.echo(f"error: {error.format_message()}", err=True)
            sys.exit(2 if isinstance(error, click.UsageError) else error.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except BAD_INPUT as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except CorruptLogError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def common(command: F) -> F:
    """--home and --json, on every command."""
    command = click.option(
        "--home",
        "home",
        default=None,
        metavar="DIR",
        help="Sheratan home (default: $SHERATAN_HOME or ./.sheratan).",
    )(command)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(command)


def open_home(home: str | None) -> Home:
    return Home.open(resolve_home(home))


def parse_uuid(_ctx: Any, param: click.Parameter, value: Any) -> Any:
    """Click callback: UUID arguments, repeated or single, with a clear message."""
    if value is None:
        return None
    try:
        if isinstance(value, tuple):
            return tuple(UUID(v) for v in value)
        return UUID(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an id (a UUID)", param=param) from None


def progress(label: str) -> Callable[[int], None] | None:
    """A progress callback printing counts to stderr, only on a terminal."""
    if not sys.stderr.isatty():
        return None
    return lambda count: click.echo(f"\r{label}: {count:,}", err=True, nl=False)


@click.group(cls=SheratanGroup)
def cli() -> None:
    """Sheratan: an event-sourced ledger for a job system that shows its reasoning."""


@cli.command()
@common
def init(home: str | None, as_json: bool) -> None:
    """Create a home (idempotent)."""
    path = resolve_home(home)
    created = init_home(path)
    if as_json:
        emit_json({"home": str(path), "created": created})
    else:
        click.echo(f"{'initialised' if created else 'already a home'}: {path}")


# ------------------------------------------------------------------ missions


@cli.group()
def mission() -> None:
    """Missions: the work an operator asks for."""


@mission.command("create")
@click.argument("title")
@click.option("--description", default="", help="Longer text.")
@common
def mission_create(title: str, description: str, home: str | None, as_json: bool) -> None:
    """Create a mission and print its id."""
    mission_id = open_home(home).app.create_mission(title, description)
    emit_json({"id": mission_id}) if as_json else click.echo(mission_id)


@mission.command("list")
@common
def mission_list(home: str | None, as_json: bool) -> None:
    """All missions."""
    view = open_home(home).views.current(MISSIONS)
    missions = sorted(view.missions.values(), key=lambda m: m.created_at)
    if as_json:
        emit_json(missions)
        return
    rows = [
        (m.id, m.status, m.title, m.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")) for m in missions
    ]
    click.echo(table(rows, ("id", "status", "title", "created")))


@mission.command("show")
@click.argument("mission_id", callback=parse_uuid)
@common
def mission_show(mission_id: UUID, home: str | None, as_json: bool) -> None:
    """One mission with its tasks."""
    opened = open_home(home)
    state = opened.app.get_mission(mission_id)
    tasks = [t for t in opened.views.current(MISSIONS).tasks.values() if t.mission_id == mission_id]
    record = to_plain(state) | {"tasks": [to_plain(t) for t in tasks]}
    emit_json(record) if as_json else click.echo(fields(record))


@mission.command("activate")
@click.argument("mission_id", callback=parse_uuid)
@common
def mission_activate(mission_id: UUID, home: str | None, as_json: bool) -> None:
    """Mark a mission active."""
    opened = open_home(home)
    opened.app.activate_mission(mission_id)
    state = opened.app.get_mission(mission_id)
    emit_json(state) if as_json else click.echo(f"{mission_id} {state.status}")


# --------------------------------------------------------------------- tasks


@cli.group()
def task() -> None:
    """Tasks: the steps of a mission."""


@task.command("create")
@click.argument("mission_id", callback=parse_uuid)
@click.argument("title")
@click.option("--description", default="", help="Longer text.")
@common
def task_create(
    mission_id: UUID, title: str, description: str, home: str | None, as_json: bool
) -> None:
    """Create a task in a mission and print its id."""
    task_id = open_home(home).app.create_task(mission_id, title, description)
    emit_json({"id": task_id}) if as_json else click.echo(task_id)


@task.command("list")
@click.option("--mission", "mission_id", callback=parse_uuid, help="Only this mission's tasks.")
@common
def task_list(mission_id: UUID | None, home: str | None, as_json: bool) -> None:
    """Tasks, oldest first."""
    tasks = sorted(
        open_home(home).views.current(MISSIONS).tasks.values(), key=lambda t: t.created_at
    )
    if mission_id is not None:
        tasks = [t for t in tasks if t.mission_id == mission_id]
    if as_json:
        emit_json(tasks)
        return
    click.echo(table([(t.id, t.mission_id, t.title) for t in tasks], ("id", "mission", "title")))


# ---------------------------------------------------------------------- jobs


@cli.group()
def job() -> None:
    """Jobs: what workers execute."""


def parse_payload(_ctx: Any, param: click.Parameter, value: str) -> dict[str, Any]:
    try:
        payload = msgspec.json.decode(value.encode())
    except msgspec.DecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param=param) from None
    if not isinstance(payload, dict):
        raise click.BadParameter("must be a JSON object", param=param)
    return payload


@job.command("create")
@click.argument("kind")
@click.option("--task", "task_id", callback=parse_uuid, help="The task this job belongs to.")
@click.option("--payload", default="{}", callback=parse_payload, help="A JSON object.")
@click.option("--priority", type=click.Choice(PRIORITIES), default="normal", show_default=True)
@click.option("--depends-on", multiple=True, callback=parse_uuid, help="A job id; repeat for more.")
@click.option("--idempotency-key", default=None, help="The same key always gives the same job.")
@click.option(
    "--timeout", "timeout_seconds", type=float, default=300.0, show_default=True, help="Seconds."
)
@click.option("--max-retries", type=int, default=3, show_default=True)
@common
def job_create(
    kind: str,
    task_id: UUID | None,
    payload: dict[str, Any],
    priority: Any,
    depends_on: tuple[UUID, ...],
    idempotency_key: str | None,
    timeout_seconds: float,
    max_retries: int,
    home: str | None,
    as_json: bool,
) -> None:
    """Create a job (queued at once) and print its id."""
    job_id = open_home(home).app.create_job(
        kind,
        payload,
        task_id=task_id,
        priority=priority,
        timeout_seconds=timeout_seconds,
        depends_on=depends_on,
        idempotency_key=idempotency_key,
        max_retries=max_retries,
    )
    emit_json({"id": job_id}) if as_json else click.echo(job_id)


@job.command("show")
@click.argument("job_id", callback=parse_uuid)
@common
def job_show(job_id: UUID, home: str | None, as_json: bool) -> None:
    """One job's state."""
    state = open_home(home).app.get_job(job_id)
    emit_json(state) if as_json else click.echo(fields(to_plain(state)))


@job.command("list")
@click.option(
    "--status", type=click.Choice(STATUSES), default=None, help="Only jobs in this status."
)
@common
def job_list(status: str | None, home: str | None, as_json: bool) -> None:
    """Jobs, oldest first (queued ones in dispatch order with --status queued)."""
    view: JobsView = open_home(home).views.current(JOBS)
    if status == "queued":
        jobs = view.queue()
    else:
        jobs = sorted(view.jobs.values(), key=lambda j: j.created_at)
        if status is not None:
            jobs = [j for j in jobs if j.status == status]
    if as_json:
        emit_json(jobs)
        return
    rows = [(j.id, j.status, j.kind, j.priority, j.attempt, j.worker) for j in jobs]
    click.echo(table(rows, ("id", "status", "kind", "priority", "attempt", "worker")))


# -------------------------------------------------------------------- events


@cli.group()
def events() -> None:
    """The log itself."""


@events.command("tail")
@click.option(
    "-n", "count", type=click.IntRange(min=0), default=10, show_default=True, help="How many."
)
@click.option("--follow", is_flag=True, help="Keep printing new events until interrupted.")
@common
def events_tail(count: int, follow: bool, home: str | None, as_json: bool) -> None:
    """The last events of the log (JSON lines with --json)."""
    ledger = open_home(home).ledger
    last = ledger.last_position()
    position = max(1, last - count + 1)
    while True:
        for _, raw in ledger.lines(position, last):
            click.echo(raw.decode() if as_json else _event_row(raw))
        if not follow:
            return
        position = last + 1
        while (last := ledger.last_position()) < position:
            time.sleep(0.2)


def _event_row(raw: bytes) -> str:
    line = msgspec.json.decode(raw)
    return f"{line['pos']:>8}  {line['ts']}  {line['topic']:<22} {line['stream']} v{line['ver']}"


# ------------------------------------------------------------------- rebuild


@cli.command()
@click.option(
    "--at", "at", type=click.IntRange(min=0), default=None, help="Fold only up to this position."
)
@click.option(
    "--view",
    "view_names",
    type=click.Choice(sorted(VIEW_KINDS)),
    multiple=True,
    help="Which view (default: all).",
)
@common
def rebuild(at: int | None, view_names: tuple[str, ...], home: str | None, as_json: bool) -> None:
    """Rebuild views from position 0 and swap them in; --at shows them as of a position."""
    opened = open_home(home)
    report: dict[str, Any] = {}
    for name in view_names or sorted(VIEW_KINDS):
        kind = VIEW_KINDS[name]
        started = time.perf_counter()
        view = (
            opened.views.as_of(kind, at, progress(name))
            if at is not None
            else opened.views.rebuild(kind, progress(name))
        )
        report[name] = _view_summary(view) | {"seconds": round(time.perf_counter() - started, 3)}
    result = {"at": at, "swapped": at is None, "views": report}
    if as_json:
        emit_json(result)
        return
    for name, summary in report.items():
        what = f"as of {at}" if at is not None else "rebuilt"
        details = ", ".join(
            f"{k} {v}" for k, v in summary.items() if k not in ("position", "seconds")
        )
        click.echo(
            f"{name}: {what}, position {summary['position']}, {details} in {summary['seconds']}s"
        )


def _view_summary(view: Any) -> dict[str, Any]:
    return {"position": view.position, **view.summary()}


# --------------------------------------------------------------------- audit


@cli.group()
def audit() -> None:
    """Prove the history was not altered."""


@audit.command("verify")
@common
def audit_verify(home: str | None, as_json: bool) -> None:
    """Recompute the whole hash chain; exit 1 naming the first bad position."""
    result = open_home(home).verify()
    if as_json:
        emit_json(
            {
                "ok": result.ok,
                "events": result.events,
                "verified": result.verified,
                "head": result.head,
                "checkpoints": result.checkpoints,
                "first_bad_position": result.first_bad_position,
                "problem": result.problem,
            }
        )
    elif result.ok:
        click.echo(
            f"{result.verified}/{result.events} events verified, "
            f"{result.checkpoints} checkpoints hold, head {result.head[:16]}"
        )
    else:
        click.echo(f"FAILED: {result.problem} ({result.verified} events verified before it)")
    if not result.ok:
        sys.exit(1)


@audit.command("checkpoint")
@common
def audit_checkpoint(home: str | None, as_json: bool) -> None:
    """Record the current position and chain head as a checkpoint."""
    record = open_home(home).ledger.checkpoint()
    emit_json(record) if as_json else click.echo(f"checkpoint at {record['pos']}: {record['hash']}")


# --------------------------------------------------------------------- bench


@cli.group()
def bench() -> None:
    """Measure against anchors in one run; prints ratios."""


@bench.command("store")
@click.option("--jobs", type=click.IntRange(min=10), default=20_000, show_default=True)
@click.option(
    "--rebuild-events", type=click.IntRange(min=1000), default=1_000_000, show_default=True
)
@click.option("--quick", is_flag=True, help="A small run (2,000 jobs, 100,000 events).")
@common
def bench_store(
    jobs: int, rebuild_events: int, quick: bool, home: str | None, as_json: bool
) -> None:
    """The ledger against SQLite, POPO, raw msgspec lines and bare fsync."""
    from sheratan.bench.store import run_store_bench

    if quick:
        jobs, rebuild_events = 2_000, 100_000
    report = run_store_bench(jobs=jobs, rebuild_events=rebuild_events, progress=progress("bench"))
    if as_json:
        emit_json(report)
        return
    rows = [
        (
            name,
            f"{f['value']:,.1f} {f['unit']}",
            f["anchor"],
            f"{f['ratio']:.2f}",
            f["target"],
            "yes" if f["met"] else "NO",
        )
        for name, f in report["figures"].items()
    ]
    click.echo(table(rows, ("figure", "value", "anchor", "ratio", "target", "met")))


def main() -> None:
    cli(prog_name="sheratan")


if __name__ == "__main__":
    main()
