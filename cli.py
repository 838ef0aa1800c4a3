"""The one entry point: parse, call one service, render. No logic lives here.

Every command takes ``--home`` and ``--json``. Bad input prints one line on stderr and exits
2; a failed check exits 1. Run ``python cli.py --help`` (or ``sheratan --help``).
"""

from __future__ import annotations

import functools
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast, get_args
from uuid import UUID

import click
import msgspec

from events.jobs import PRIORITIES
from events.workers import TRANSPORTS
from projections.jobs import Status
from sheratan.analytics import PH_DELTA, PH_LAMBDA, QUERY_TIMEOUT_S
from sheratan.api import DEFAULT_HOST, DEFAULT_PORT
from sheratan.dispatch import DEFAULT_NAME as DEFAULT_DISPATCHER
from sheratan.dispatch import SIMULATION
from sheratan.inputs import MAX_NAME_CHARS, check_arguments, check_text, decode_object
from sheratan.lifecycle import OPERATOR_CANCEL_REASON
from sheratan.progress import Progress
from sheratan.render import emit_json, fields, render_rows, table, to_plain
from sheratan.replay import ESTIMATORS
from sheratan.workers import DEFAULT_GRACE_S, DEFAULT_HEARTBEAT_S

if TYPE_CHECKING:
    from projections.jobs import JobsView
    from sheratan.analytics.why import Why
    from sheratan.audit.proofs import Proof
    from sheratan.dispatch.runner import Stop
    from sheratan.dispatch.service import EngineConfig
    from sheratan.home import Home
    from sheratan.postgres.exporter import Lag
    from sheratan.workers.daemon import DaemonConfig

# The services are imported in the commands that call them, so that a command loads only
# what it uses: `--help` and `job show` load neither DuckDB nor numpy (tests/test_cli_start.py).

F = TypeVar("F", bound=Callable[..., Any])

#: Errors that mean "the input was wrong": one line on stderr, exit 2. Named, not imported
#: (see ``loaded_errors``).
BAD_INPUT = (
    "sheratan.inputs.InvalidInputError",
    "sheratan.api.tokens.TokenMissingError",
    "sheratan.app.NotFoundError",
    "sheratan.home.HomeMissingError",
    "sheratan.lifecycle.IllegalTransitionError",
    "sheratan.decide.policy.PolicyError",
    "sheratan.decide.selection.PolicyParseError",
    "sheratan.limits.BackpressureError",
    "sheratan.workers.simulated.ProfileError",
    "sheratan.analytics.session.ReadOnlyError",
    "sheratan.analytics.session.QueryError",
    "sheratan.analytics.why.WhyNotFoundError",
    "sheratan.replay.counterfactual.CounterfactualError",
    "sheratan.replay.estimators.SupportError",
    "sheratan.replay.history.ReplayError",
    "sheratan.audit.service.AuditInputError",
    "sheratan.audit.signing.SigningKeyError",
    "sheratan.audit.checkpoint.CheckpointFormatError",
)
#: Errors that mean "a check failed": one line on stderr, exit 1.
FAILED_CHECK = (
    "sheratan.store.ledger.CorruptLogError",
    "sheratan.audit.proofs.ProofFailedError",
    "sheratan.audit.service.LogMismatchError",
)
STATUSES: tuple[str, ...] = get_args(Status)


def loaded_errors(names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    """The classes named ``module.Class`` whose modules are imported.

    An error of a module never imported cannot have been raised, so classifying an error
    needs no import (most of these modules load the store, DuckDB or numpy)."""
    found = []
    for name in names:
        module, _, attribute = name.rpartition(".")
        if module in sys.modules:
            found.append(getattr(sys.modules[module], attribute))
    return tuple(found)


class SheratanGroup(click.Group):
    """Turns every error into one clear line on stderr with the documented exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            given = args[0] if args else kwargs.get("args")
            check_arguments(list(sys.argv[1:] if given is None else given))
            code = super().main(*args, **kwargs)
            close_homes()
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.ClickException as error:
            click.echo(f"error: {error.format_message()}", err=True)
            sys.exit(2 if isinstance(error, click.UsageError) else error.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except Exception as error:
            if not isinstance(error, loaded_errors(BAD_INPUT + FAILED_CHECK)):
                raise
            click.echo(f"error: {error}", err=True)
            sys.exit(2 if isinstance(error, loaded_errors(BAD_INPUT)) else 1)
        sys.exit(code if isinstance(code, int) else 0)


def _home_option(command: F) -> F:
    return click.option(
        "--home",
        "home",
        default=None,
        metavar="DIR",
        help="Sheratan home (default: $SHERATAN_HOME or ./.sheratan).",
    )(command)


def _json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(command)


def common(command: F) -> F:
    """--home and --json, on every command; given before the command, they count the same."""

    @functools.wraps(command)
    def with_group_options(*args: Any, home: str | None, as_json: bool, **kwargs: Any) -> Any:
        before = click.get_current_context().find_root().params
        home = home if home is not None else before.get("home")
        from sheratan.home import resolve_home
        from sheratan.postgres.support import refuse_unsupported

        lag = None
        if refuse_unsupported(resolve_home(home), click.get_current_context().command_path):
            lag = export_first(home)
        try:
            return command(*args, home=home, as_json=as_json or before.get("as_json"), **kwargs)
        except click.UsageError:
            lag = None  # bad input: its one line alone
            raise
        except Exception as error:
            if isinstance(error, loaded_errors(BAD_INPUT)):
                lag = None
            raise
        finally:
            if lag is not None and not showing().quiet:
                click.echo(lag.line(), err=True)

    return _json_option(_home_option(cast(F, with_group_options)))


def export_first(home: str | None) -> Lag:
    """On a PostgreSQL home, before a command reads the export: bring it up to date (one
    checked pass). How far behind the database it is goes on stderr once the command has
    answered (``common``), unless --quiet or the input was bad (one line, its error)."""
    from sheratan.postgres.exporter import bring_up_to_date

    with showing() as shown:
        return bring_up_to_date(open_home(home), shown)


def file_option(*names: str, help: str) -> Callable[[F], F]:
    """An option naming a file to read (a policy, a workers file), None when not given."""
    return click.option(
        *names, type=click.Path(dir_okay=False, path_type=Path), default=None, help=help
    )


def reading(command: F) -> F:
    """--home and --json, and --up-to-damage: for commands that only read the log."""
    command = click.option(
        "--up-to-damage",
        is_flag=True,
        expose_value=False,
        callback=_serve_intact_prefix,
        help="On a damaged log, answer from the positions before the first damage.",
    )(command)
    return common(command)


_opened: list[Home] = []
_intact_prefix: list[bool] = []


def _serve_intact_prefix(_ctx: Any, _param: click.Parameter, value: bool) -> None:
    if value:
        _intact_prefix.append(True)


def open_home(home: str | None) -> Home:
    from sheratan.home import Home, resolve_home

    opened = Home.open(resolve_home(home))
    _opened.append(opened)
    if _intact_prefix:
        damage = opened.ledger.damage
        last = opened.ledger.serve_intact_prefix()
        if damage is not None:
            click.echo(
                f"note: the log is damaged at position {damage.position} ({damage.path}: "
                f"{damage.problem}); answering from positions 1..{last} only",
                err=True,
            )
    return opened


def close_homes() -> None:
    """Save what the command indexed (the sidecar), so the next command opens fast."""
    while _opened:
        _opened.pop().close()


def reveal_option(command: F) -> F:
    """--reveal: raw values, recorded in the log (audit.revealed) before they are shown."""
    return click.option(
        "--reveal",
        is_flag=True,
        help="Show raw values; recorded in the log (audit.revealed) before anything is shown.",
    )(command)


def revealing(opened: Home, reveal: bool) -> bool:
    """Record the reveal first when one is asked for; True when raw values may be shown."""
    from sheratan.reveal import record_reveal

    if reveal:
        ctx = click.get_current_context()
        record_reveal(opened.app, ctx.command_path, ctx.params)
    return reveal


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


#: Where ``--quiet`` after a command is noted (click's meta is shared by the whole context chain).
QUIET = "sheratan.quiet"


def _note_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[QUIET] = True


def quiet_option(command: F) -> F:
    """--quiet after a command that shows progress (before any command, it counts the same)."""
    return click.option(
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_note_quiet,
        help="No progress on stderr.",
    )(command)


def showing() -> Progress:
    """This command's progress on stderr (sheratan/progress.py): a bar on a terminal, a line
    every $SHERATAN_PROGRESS_EVERY seconds (10) elsewhere, nothing with --quiet."""
    ctx = click.get_current_context()
    return Progress(quiet=bool(ctx.find_root().params.get("quiet") or ctx.meta.get(QUIET)))


@click.group(cls=SheratanGroup)
@click.version_option(package_name="sheratan", prog_name="sheratan")
@_home_option
@_json_option
@click.option("--quiet", is_flag=True, help="No progress on stderr (for long work).")
def cli(home: str | None, as_json: bool, quiet: bool) -> None:
    """Sheratan: an event-sourced ledger for a job system that shows its reasoning.

    --home, --json and --quiet may stand before the command or after it.
    """


@cli.command()
@click.option(
    "--store",
    type=click.Choice(["embedded", "postgres"]),
    default="embedded",
    show_default=True,
    help="Where the log lives: the home's JSONL files, or PostgreSQL (docs/postgres.md).",
)
@click.option(
    "--dsn",
    default=None,
    help="With --store postgres: postgresql://USER[:PASSWORD]@HOST:PORT/DB (default "
    "$SHERATAN_DSN); a password is kept in a 0600 file beside the marker, never in it.",
)
@common
def init(store: str, dsn: str | None, home: str | None, as_json: bool) -> None:
    """Create a home (idempotent)."""
    from sheratan.home import init_home, resolve_home
    from sheratan.postgres.target import store_target

    path = resolve_home(home)
    created = init_home(path, *store_target(store, dsn))
    if as_json:
        emit_json({"home": str(path), "created": created})
    else:
        click.echo(f"{'initialised' if created else 'already a home'}: {path}")


@cli.command("export")
@click.option(
    "--to",
    "to_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the whole log into this new folder, an embedded home of its own.",
)
@click.option(
    "--follow",
    is_flag=True,
    help="PostgreSQL home: keep the export current (woken by NOTIFY) until SIGTERM or Ctrl-C.",
)
@click.option(
    "--check",
    is_flag=True,
    help="PostgreSQL home: first render every exported line again from the database and "
    "compare (the whole history, not only the head); exit 1 naming the first that differs.",
)
@quiet_option
@common
def export_cmd(
    to_dir: Path | None, follow: bool, check: bool, home: str | None, as_json: bool
) -> None:
    """Export the log: a PostgreSQL home's JSONL copy (once, or --follow), or --to DIR."""
    from sheratan.migration import export_to
    from sheratan.postgres.exporter import Source, bring_up_to_date, check_all
    from sheratan.postgres.exporter import follow as follow_export

    opened = open_home(home)
    if check and opened.marker.postgres is None:
        raise click.UsageError("--check compares a PostgreSQL home's export with its database")
    if check:
        with showing() as shown, shown.counting("checking the export", unit="events") as tick:
            checked = check_all(Source(opened.app.recorder), opened.ledger, tick)
        click.echo(f"export: {checked} positions match the database", err=True)
    if to_dir is not None:
        if follow:
            raise click.UsageError("--to and --follow do not go together")
        with showing() as shown, shown.counting(f"exporting to {to_dir}", unit="events") as tick:
            done = export_to(opened, to_dir.absolute(), tick)
        emit_json(done) if as_json else click.echo(f"exported {done['events']} events to {to_dir}")
        return
    if opened.marker.postgres is None:
        raise click.UsageError("an embedded home is its own JSONL log: export --to DIR copies it")
    if not follow:
        with showing() as shown:
            lag = bring_up_to_date(opened, shown)
        emit_json(vars(lag)) if as_json else click.echo(lag.line())
        return
    stop = stop_on_signals()
    click.echo(f"export: following {opened.marker.postgres.display()}; stop with Ctrl-C", err=True)
    with opened.waker() as waker:
        stop.wakes(waker)
        lag = follow_export(
            Source(opened.app.recorder),
            opened.ledger,
            waker,
            stop,
            lambda lag: click.echo(f"{lag.line()} ({lag.behind} behind)", err=True),
        )
    emit_json(vars(lag)) if as_json else click.echo(f"{lag.line()} (stopped)")


@cli.command("import")
@click.option(
    "--from",
    "from_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="An embedded home (or an export --to folder) whose whole log to import.",
)
@click.option(
    "--store",
    type=click.Choice(["embedded", "postgres"]),
    default="embedded",
    show_default=True,
    help="For a new home: where its log lives (an existing, empty home keeps its own).",
)
@click.option("--dsn", default=None, help="With --store postgres: as for init.")
@quiet_option
@common
def import_cmd(
    from_dir: Path, store: str, dsn: str | None, home: str | None, as_json: bool
) -> None:
    """Import a whole log into an empty home, with the same positions and hashes."""
    from sheratan.home import resolve_home
    from sheratan.migration import import_from
    from sheratan.postgres.target import store_target

    target = store_target(store, dsn)
    with showing() as shown, shown.counting(f"importing {from_dir}", unit="events") as tick:
        done = import_from(from_dir.absolute(), resolve_home(home), *target, tick)
    emit_json(done) if as_json else click.echo(
        f"imported {done['events']} events into {done['home']}"
    )


# ------------------------------------------------------------------ the API


@cli.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="An origin allowed to call the API from a browser (CORS is closed without one).",
)
@file_option("--limits", help="Rate limits merged over policies/limits.json (docs/api.md).")
@file_option("--gates", help="The gates.json your dispatchers use: jobs it refuses get 403.")
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The folder job paths must stay in, as dispatch --workspace (default: this one).",
)
@common
def serve(
    host: str,
    port: int,
    cors_origins: tuple[str, ...],
    limits: Path | None,
    gates: Path | None,
    workspace: Path | None,
    home: str | None,
    as_json: bool,
) -> None:
    """Serve the HTTP API until SIGTERM or Ctrl-C (every route but /health needs the token)."""
    from sheratan.api.server import serve as run_server
    from sheratan.decide.policy import load_gates
    from sheratan.limits import load_limits

    opened = open_home(home)
    loaded = load_limits(limits)
    policy = load_gates(gates)
    click.echo(f"serving {opened.path} on http://{host}:{port} (token: sheratan token)", err=True)
    run_server(
        opened,
        host=host,
        port=port,
        cors_origins=cors_origins,
        limits=loaded,
        gates=policy,
        workspace=workspace,
    )


@cli.group(invoke_without_command=True)
@common
@click.pass_context
def token(ctx: click.Context, home: str | None, as_json: bool) -> None:
    """Print the home's API token alone on one line (``token rotate`` replaces it)."""
    from sheratan.api.tokens import read_token

    if ctx.invoked_subcommand is not None:
        return
    secret = read_token(open_home(home).path)
    emit_json({"token": secret}) if as_json else click.echo(secret)


@token.command("rotate")
@common
def token_rotate(home: str | None, as_json: bool) -> None:
    """Replace the API token; the rotation is recorded (who, the new fingerprint), the token
    never is. The server takes the new one at its next request."""
    from sheratan.api.tokens import fingerprint, new_token
    from sheratan.reveal import os_user

    opened = open_home(home)
    secret = new_token(opened.path)
    opened.app.record_token_rotation(os_user(), fingerprint(secret))
    emit_json({"fingerprint": fingerprint(secret)}) if as_json else click.echo(
        f"rotated: the new token's fingerprint is {fingerprint(secret)} (sheratan token)"
    )


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
@reading
def mission_list(home: str | None, as_json: bool) -> None:
    """All missions."""
    from sheratan.views import MISSIONS

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
@reading
def mission_show(mission_id: UUID, home: str | None, as_json: bool) -> None:
    """One mission with its tasks."""
    from sheratan.views import MISSIONS

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
@reading
def task_list(mission_id: UUID | None, home: str | None, as_json: bool) -> None:
    """Tasks, oldest first."""
    from sheratan.views import MISSIONS

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


def parse_json_object(
    _ctx: Any, param: click.Parameter, value: str | None
) -> dict[str, Any] | None:
    """Click callback: an option holding one JSON object (None when not given)."""
    return None if value is None else decode_object(value, f"--{param.name}")


def parse_amount(_ctx: Any, param: click.Parameter, value: str | None) -> int | None:
    """Click callback: an amount in units ("12.5") as micro-units (None when not given)."""
    if value is None:
        return None
    from sheratan import accounts as accounts_service

    what = param.opts[0] if isinstance(param, click.Option) else "amount"
    return accounts_service.parse_amount(value, what)


def payer_options(command: F) -> F:
    """``--payer ACCOUNT --budget N``: who pays for a job's attempts, and at most how much each."""
    command = click.option(
        "--budget",
        "budget_micros",
        default=None,
        callback=parse_amount,
        metavar="N",
        help="Most one attempt may be estimated at (units, e.g. 2.5).",
    )(command)
    return click.option(
        "--payer", default=None, metavar="ACCOUNT", help="The account charged for its attempts."
    )(command)


@job.command("create")
@click.argument("kind")
@click.option("--task", "task_id", callback=parse_uuid, help="The task this job belongs to.")
@click.option("--payload", default="{}", callback=parse_json_object, help="A JSON object.")
@click.option("--priority", type=click.Choice(PRIORITIES), default="normal", show_default=True)
@click.option("--depends-on", multiple=True, callback=parse_uuid, help="A job id; repeat for more.")
@click.option("--idempotency-key", default=None, help="The same key always gives the same job.")
@click.option(
    "--timeout", "timeout_seconds", type=float, default=300.0, show_default=True, help="Seconds."
)
@click.option("--max-retries", type=int, default=3, show_default=True)
@file_option("--limits", help="Creation limits merged over policies/limits.json (docs/limits.md).")
@payer_options
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
    limits: Path | None,
    payer: str | None,
    budget_micros: int | None,
    home: str | None,
    as_json: bool,
) -> None:
    """Create a job (queued at once) and print its id; refused (exit 2, nothing recorded)
    while the queue or the job's mission is over a creation limit."""
    from sheratan.admission import Admission
    from sheratan.limits import load_limits

    opened = open_home(home)
    job_id = opened.app.create_job(
        kind,
        payload,
        task_id=task_id,
        priority=priority,
        timeout_seconds=timeout_seconds,
        depends_on=depends_on,
        idempotency_key=idempotency_key,
        max_retries=max_retries,
        admit=Admission(opened, load_limits(limits)),
        payer=payer,
        budget_micros=budget_micros,
    )
    emit_json({"id": job_id}) if as_json else click.echo(job_id)


@job.command("show")
@click.argument("job_id", callback=parse_uuid)
@reveal_option
@reading
def job_show(job_id: UUID, reveal: bool, home: str | None, as_json: bool) -> None:
    """One job's state (secrets redacted unless --reveal), and its chain's jobs if it is in
    one (``chain_jobs``: id, kind, status and depth of each, the first job first)."""
    from sheratan.chains import chain_members
    from sheratan.reveal import shown
    from sheratan.views import CHAINS

    opened = open_home(home)
    job = opened.app.get_job(job_id)
    state = shown(job, reveal=revealing(opened, reveal))
    members = [opened.app.get_job(m) for m in chain_members(opened.views.current(CHAINS), job_id)]
    if members:
        state["chain_jobs"] = [
            {
                "id": m.id,
                "kind": m.kind,
                "status": m.status,
                "depth": m.chain.depth if m.chain else 0,
            }
            for m in members
        ]
    emit_json(state) if as_json else click.echo(fields(state))


@job.command("list")
@click.option(
    "--status", type=click.Choice(STATUSES), default=None, help="Only jobs in this status."
)
@click.option("--kind", default=None, help="Only jobs of this kind.")
@click.option("--mission", "mission_id", callback=parse_uuid, help="Only this mission's jobs.")
@click.option("--task", "task_id", callback=parse_uuid, help="Only this task's jobs.")
@reveal_option
@reading
def job_list(
    status: str | None,
    kind: str | None,
    mission_id: UUID | None,
    task_id: UUID | None,
    reveal: bool,
    home: str | None,
    as_json: bool,
) -> None:
    """Jobs matching every filter given, oldest first (queued ones in dispatch order with
    --status queued). Payloads and results are redacted unless --reveal."""
    from sheratan.reveal import shown
    from sheratan.views import JOBS

    opened = open_home(home)
    view: JobsView = opened.views.current(JOBS)
    jobs = view.matching(status, kind, mission_id, task_id)
    plain = shown(jobs, reveal=revealing(opened, reveal))
    if as_json:
        emit_json(plain)
        return
    columns = ("id", "status", "kind", "priority", "attempt", "worker")
    click.echo(table([tuple(j[c] for c in columns) for j in plain], columns))


@job.command("cancel")
@click.argument("job_id", callback=parse_uuid)
@click.option("--reason", default=OPERATOR_CANCEL_REASON, show_default=True)
@common
def job_cancel(job_id: UUID, reason: str, home: str | None, as_json: bool) -> None:
    """Cancel a job that has not ended, and every job that depends on it, transitively.

    Refused (exit 2, nothing recorded) for a completed, cancelled or quarantined job."""
    from sheratan.views import JOBS

    opened = open_home(home)
    dependents = opened.app.cancel_job(job_id, reason, view=opened.views.current(JOBS))
    plain = {"id": job_id, "status": "cancelled", "dependents_cancelled": dependents}
    said = f"{job_id} cancelled: {reason}; {len(dependents)} dependent job(s) cancelled"
    emit_json(plain) if as_json else click.echo(said)


@job.command("requeue")
@click.argument("job_id", callback=parse_uuid)
@click.option("--reason", required=True, help="Why it may run again (recorded).")
@common
def job_requeue(job_id: UUID, reason: str, home: str | None, as_json: bool) -> None:
    """Queue a failed, timed-out or quarantined job again for a new attempt.

    Its retry count is kept: if the new attempt fails, recovery decides with what is left of
    max_retries (none left: ABORT). Refused (exit 2, nothing recorded) in any other status."""
    opened = open_home(home)
    opened.app.requeue_job(job_id, reason)
    plain = {"id": job_id, "status": "queued", "reason": reason}
    emit_json(plain) if as_json else click.echo(f"{job_id} queued again: {reason}")


@job.command("retry-dependents")
@click.argument("job_id", callback=parse_uuid)
@common
def job_retry_dependents(job_id: UUID, home: str | None, as_json: bool) -> None:
    """Queue again the jobs that JOB_ID's end cancelled.

    Those are the jobs cancelled because JOB_ID failed, was aborted, quarantined or
    cancelled: its dependents and, transitively, theirs (each records JOB_ID as its cause).
    Allowed once JOB_ID is back in play (completed, or queued again by `job requeue`);
    refused (exit 2, nothing recorded) while it is failed, timed out or quarantined (requeue
    it first), and when it was cancelled (final: its dependents cannot resume). Jobs
    cancelled for another reason are left alone; none to resume is not an error (0 resumed)."""
    from sheratan.views import JOBS

    opened = open_home(home)
    resumed = opened.app.retry_dependents(job_id, opened.views.current(JOBS))
    if as_json:
        emit_json({"id": job_id, "resumed": resumed})
        return
    click.echo(f"{len(resumed)} dependent job(s) of {job_id} queued again")
    for resumed_id in resumed:
        click.echo(resumed_id)


# -------------------------------------------------------------------- events


@cli.group()
def account() -> None:
    """Accounts: who pays for jobs; balances, holds and charges (amounts in units)."""


@account.command("open")
@click.argument("account_id")
@click.option("--owner", default="", help="Who the account belongs to.")
@click.option("--balance", "balance_micros", default="0", callback=parse_amount, metavar="N")
@common
def account_open(
    account_id: str, owner: str, balance_micros: int, home: str | None, as_json: bool
) -> None:
    """Open an account, with an opening balance (its first credit) if given."""
    opened = open_home(home)
    opened.app.open_account(account_id, owner, balance_micros)
    echo_balance(opened, account_id, "opened", as_json)


@account.command("credit")
@click.argument("account_id")
@click.argument("amount_micros", metavar="AMOUNT", callback=parse_amount)
@click.option("--reason", default="", help="Why (recorded).")
@common
def account_credit(
    account_id: str, amount_micros: int, reason: str, home: str | None, as_json: bool
) -> None:
    """Credit an account AMOUNT units."""
    opened = open_home(home)
    opened.app.credit_account(account_id, amount_micros, reason)
    echo_balance(opened, account_id, "credited", as_json)


def echo_balance(opened: Home, account_id: str, done: str, as_json: bool) -> None:
    """The account after a change: its whole record with --json, else one line."""
    from sheratan import accounts as accounts_service
    from sheratan.views import ACCOUNTS

    shown_account = accounts_service.show(opened.views.current(ACCOUNTS), account_id)
    emit_json(shown_account) if as_json else click.echo(
        f"{done} {account_id}: balance {shown_account['balance']}"
    )


@account.command("show")
@click.argument("account_id")
@reading
def account_show(account_id: str, home: str | None, as_json: bool) -> None:
    """One account: balance, held, available (from the accounts view)."""
    from sheratan import accounts as accounts_service
    from sheratan.views import ACCOUNTS

    shown_account = accounts_service.show(open_home(home).views.current(ACCOUNTS), account_id)
    emit_json(shown_account) if as_json else click.echo(fields(shown_account))


@account.command("list")
@reading
def account_list(home: str | None, as_json: bool) -> None:
    """Every account."""
    from sheratan import accounts as accounts_service
    from sheratan.views import ACCOUNTS

    rows = accounts_service.listing(open_home(home).views.current(ACCOUNTS))
    if as_json:
        emit_json(rows)
        return
    columns = ("id", "owner", "balance", "held", "available", "open_holds")
    click.echo(table([[row[c] for c in columns] for row in rows], columns))


@account.command("history")
@click.argument("account_id")
@reading
def account_history(account_id: str, home: str | None, as_json: bool) -> None:
    """An account's events in log order: credits, holds, settlements, releases."""
    from sheratan import accounts as accounts_service
    from sheratan.views import ACCOUNTS

    opened = open_home(home)
    rows = accounts_service.history(opened, opened.views.current(ACCOUNTS), account_id)
    if as_json:
        emit_json(rows)
        return
    click.echo(table([accounts_service.history_row(row) for row in rows], HISTORY_COLUMNS))


HISTORY_COLUMNS = ("position", "topic", "amount", "job", "attempt", "note")


@cli.group()
def events() -> None:
    """The log itself."""


@events.command("tail")
@click.option(
    "-n", "count", type=click.IntRange(min=0), default=10, show_default=True, help="How many."
)
@click.option("--follow", is_flag=True, help="Keep printing new events until interrupted.")
@reveal_option
@reading
def events_tail(count: int, follow: bool, reveal: bool, home: str | None, as_json: bool) -> None:
    """The last events of the log (JSON lines with --json; data redacted unless --reveal)."""
    from sheratan.reveal import redacted_line

    opened = open_home(home)
    raw_lines = revealing(opened, reveal)
    ledger = opened.log
    # --follow sleeps until a commit (wake files, or LISTEN/NOTIFY on PostgreSQL); it
    # listens before its first read, so no commit after that read is missed.
    waker = opened.waker() if follow else None
    last = ledger.last_position()
    position = max(1, last - count + 1)
    try:
        while True:
            for _, raw in ledger.lines(position, last):
                if not as_json:
                    click.echo(_event_row(raw))
                elif raw_lines:
                    click.echo(raw.decode())
                else:
                    click.echo(msgspec.json.encode(redacted_line(raw)).decode())
            if waker is None:  # no --follow
                return
            sys.stdout.flush()  # a pipe reader sees each event as it is committed
            position = last + 1
            while (last := ledger.last_position()) < position:
                waker.wait(1.0)
    except KeyboardInterrupt:
        return  # Ctrl-C ends --follow; that is not an error
    finally:
        if waker is not None:
            waker.close()


def _event_row(raw: bytes) -> str:
    line = msgspec.json.decode(raw)
    return f"{line['pos']:>8}  {line['ts']}  {line['topic']:<22} {line['stream']} v{line['ver']}"


# ------------------------------------------------------------------- workers


@cli.group()
def worker() -> None:
    """Workers: who executes which kinds of job."""


def parse_kinds(_ctx: Any, param: click.Parameter, value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    if not kinds:
        raise click.BadParameter("name at least one kind", param=param)
    return kinds


@worker.command("register")
@click.argument("worker_id")
@click.option("--kinds", required=True, callback=parse_kinds, help="Comma-separated job kinds.")
@click.option("--transport", type=click.Choice(TRANSPORTS), required=True)
@click.option(
    "--profile",
    callback=parse_json_object,
    default=None,
    help="JSON: a simulated worker's success, latency_ms, cost, quality, risk.",
)
@click.option(
    "--relay-dir",
    default=None,
    metavar="DIR",
    help="webrelay: the folder of its out/, in/ and rejected/ files (made if missing).",
)
@click.option(
    "--issue-token",
    is_flag=True,
    help="A process worker's own API token (`worker run --api`); the home keeps its digest.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where --issue-token writes the token (mode 0600; default: ./ID.token).",
)
@common
def worker_register(
    worker_id: str,
    kinds: tuple[str, ...],
    transport: Any,
    profile: dict[str, Any] | None,
    relay_dir: str | None,
    issue_token: bool,
    token_file: Path | None,
    home: str | None,
    as_json: bool,
) -> None:
    """Register a worker (local and simulated run inside the dispatcher; a process worker is
    a `worker run` daemon; a webrelay worker is reached through files in --relay-dir)."""
    from sheratan.api.worker_tokens import check_token_id, issue_worker_token, write_token_file
    from sheratan.inputs import InvalidInputError
    from sheratan.workers.simulated import check_worker_profile
    from sheratan.workers.webrelay import relay_profile

    opened = open_home(home)
    check_worker_profile(worker_id, kinds, transport, profile)
    if (issue_token or token_file) and (transport != "process" or not issue_token):
        msg = "--issue-token (with --token-file) is for a process worker"
        raise InvalidInputError(msg)
    if issue_token:
        check_token_id(worker_id)
    profile = relay_profile(transport, relay_dir, profile)
    cost = float((profile or {}).get("cost", 0.0))
    opened.app.register_worker(worker_id, kinds, transport, cost_hint=cost, profile=profile)
    state = opened.app.get_worker(worker_id)
    written = None
    if issue_token:
        written = (token_file or Path(f"{worker_id}.token")).resolve()
        write_token_file(written, issue_worker_token(opened.path, worker_id))
    token_line = f"; its token is in {written} (worker run --api URL --token-file)"
    emit_json({**to_plain(state), "token_file": str(written) if written else None}) if (
        as_json
    ) else click.echo(
        f"registered {worker_id} ({transport}: {', '.join(kinds)})"
        + (token_line if written else "")
    )


@worker.command("run")
@click.argument("worker_id")
@click.option("--kinds", required=True, callback=parse_kinds, help="Comma-separated job kinds.")
@click.option("--concurrency", type=int, default=1, show_default=True, help="Attempts at once.")
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Root that job paths are confined to (default: the current folder).",
)
@click.option(
    "--heartbeat",
    "heartbeat_s",
    type=float,
    default=DEFAULT_HEARTBEAT_S,
    show_default=True,
    help="Seconds between heartbeats.",
)
@click.option(
    "--grace",
    "grace_s",
    type=float,
    default=DEFAULT_GRACE_S,
    show_default=True,
    help="On SIGTERM or Ctrl-C, seconds to finish running attempts before handing them back.",
)
@click.option(
    "--api",
    default=None,
    metavar="URL",
    help="Run over this Sheratan API (pull protocol) instead of a home on this machine.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --api: the worker's token (worker register --issue-token).",
)
@click.option(
    "--price",
    type=float,
    default=0.0,
    show_default=True,
    help="Cost of one attempt in units: its cost hint, and what a paid job's payer is charged.",
)
@common
def worker_run(
    worker_id: str,
    kinds: tuple[str, ...],
    concurrency: int,
    workspace: Path | None,
    heartbeat_s: float,
    grace_s: float,
    api: str | None,
    token_file: Path | None,
    price: float,
    home: str | None,
    as_json: bool,
) -> None:
    """Run a worker daemon: register, heartbeat, claim and run the attempts leased to it.

    With --api URL --token-file F it runs over the HTTP API instead (registered beforehand
    with --issue-token), so it may run on another machine.
    It stops on SIGTERM or Ctrl-C: no new claims, running attempts finish within --grace
    (or are handed back: their leases expire), then one line and exit 0."""
    from sheratan.workers.daemon import DaemonConfig, run_worker

    config = DaemonConfig(
        worker_id, kinds, concurrency, workspace or Path.cwd(), heartbeat_s, grace_s, price
    )
    if api is not None or token_file is not None:
        stats = worker_over_api(config, api, token_file)
        emit_json(stats) if as_json else click.echo(stats.line(worker_id))
        return
    opened = open_home(home)
    started = (
        f"worker {worker_id} runs {','.join(kinds)} ({concurrency} at once) for {opened.path}; "
        "stop with Ctrl-C"
    )
    stats = run_worker(opened, config, on_start=lambda: click.echo(started, err=True))
    emit_json(stats) if as_json else click.echo(stats.line(worker_id))


def worker_over_api(config: DaemonConfig, api: str | None, token_file: Path | None) -> Any:
    """``worker run --api``: the daemon over HTTP; a refusal by the API is a failed check."""
    from sheratan.api.worker_tokens import read_token_file
    from sheratan.inputs import InvalidInputError
    from sheratan.workers.remote import RefusedError, run_remote_worker

    if api is None or token_file is None:
        msg = "--api and --token-file go together"
        raise InvalidInputError(msg)
    started = (
        f"worker {config.worker_id} runs {','.join(config.kinds)} ({config.concurrency} at once) "
        f"for {api}; stop with Ctrl-C"
    )
    try:
        return run_remote_worker(
            api,
            read_token_file(token_file),
            config,
            on_start=lambda: click.echo(started, err=True),
        )
    except RefusedError as error:
        raise click.ClickException(str(error)) from error


@worker.command("list")
@reading
def worker_list(home: str | None, as_json: bool) -> None:
    """Registered workers."""
    from sheratan.reveal import shown
    from sheratan.views import WORKERS

    workers = sorted(open_home(home).views.current(WORKERS).workers.values(), key=lambda w: w.id)
    plain = shown(workers, reveal=False)
    if as_json:
        emit_json(plain)
        return
    rows = [
        (w["id"], w["transport"], ",".join(w["kinds"]), w["status"], w["quarantine_reason"])
        for w in plain
    ]
    click.echo(table(rows, ("id", "transport", "kinds", "status", "reason")))


@worker.command("quarantine")
@click.argument("worker_id")
@click.option("--reason", default="quarantined by an operator", show_default=True)
@common
def worker_quarantine(worker_id: str, reason: str, home: str | None, as_json: bool) -> None:
    """Take a worker out of every decision until it is released."""
    opened = open_home(home)
    opened.app.quarantine_worker(worker_id, reason)
    state = opened.app.get_worker(worker_id)
    emit_json(state) if as_json else click.echo(f"{worker_id} quarantined: {reason}")


@worker.command("release")
@click.argument("worker_id")
@common
def worker_release(worker_id: str, home: str | None, as_json: bool) -> None:
    """Let a quarantined worker be chosen again."""
    opened = open_home(home)
    opened.app.release_worker(worker_id)
    state = opened.app.get_worker(worker_id)
    emit_json(state) if as_json else click.echo(f"{worker_id} released")


# ------------------------------------------------------------ dispatch, simulate


def workspace_option(command: F) -> F:
    return click.option(
        "--workspace",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Show paths relative to this folder (default: the one the engine recorded).",
    )(command)


def engine_options(command: F) -> F:
    """The decision policy options shared by dispatch and simulate."""
    command = click.option(
        "--seed", type=int, default=0, show_default=True, help="Seed of the randomized step."
    )(command)
    command = click.option(
        "--epsilon",
        type=click.FloatRange(0, 1),
        default=None,
        help="Exploration rate (default: policies/gates.json).",
    )(command)
    command = click.option(
        "--policy", default="ucb", show_default=True, help="ucb, random or always:<worker>."
    )(command)
    command = file_option("--gates", help="A gates.json of your own.")(command)
    command = file_option(
        "--limits", help="A limits.json of your own (workers.max_attempts gates candidates)."
    )(command)
    command = file_option(
        "--system", "system_policy", help="A system.json of your own (states, anomaly rules)."
    )(command)
    return file_option("--scoring", help="A scoring.json of your own.")(command)


@cli.command()
@click.option("--until-idle", is_flag=True, help="Keep dispatching until no job is ready.")
@click.option(
    "--follow",
    is_flag=True,
    help="Keep running: follow the log, dispatch, settle and sweep leases until SIGTERM or Ctrl-C.",
)
@click.option(
    "--name",
    default=DEFAULT_DISPATCHER,
    show_default=True,
    help="This dispatcher's name: its tracking records are dispatcher:<name>.",
)
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Root that job paths are confined to (default: the current folder).",
)
@engine_options
@quiet_option
@common
def dispatch(
    until_idle: bool,
    follow: bool,
    name: str,
    workspace: Path | None,
    scoring: Path | None,
    system_policy: Path | None,
    gates: Path | None,
    limits: Path | None,
    policy: str,
    epsilon: float | None,
    seed: int,
    home: str | None,
    as_json: bool,
) -> None:
    """Dispatch the next ready job (or all of them, or follow the log until stopped).

    Several dispatchers may serve one home at once, each in its own process (on several
    hosts when the log is in PostgreSQL): they take turns under the log's dispatch lock (a
    lock file, or a PostgreSQL advisory lock), and a lost race is re-read, never an error.
    """
    from sheratan.dispatch.service import EngineConfig
    from sheratan.dispatch.service import dispatch as run_dispatch
    from sheratan.dispatch.service import summary as run_summary

    if until_idle and follow:
        raise click.UsageError("choose --until-idle or --follow, not both")
    check_text("dispatcher name", name, MAX_NAME_CHARS)
    opened = open_home(home)
    config = EngineConfig.load(
        policy=policy,
        epsilon=epsilon,
        seed=seed,
        scoring_path=scoring,
        gates_path=gates,
        limits_path=limits,
        workspace=workspace,
        system_path=system_policy,
    )
    shown = showing()
    with shown, shown.counting("dispatched", unit="jobs", moves_only=follow) as advance:
        if follow:
            stats = follow_until_stopped(opened, config, name, advance)
        else:
            most = None if until_idle else 1
            stats = run_dispatch(opened, config, max_jobs=most, name=name, progress=advance)
    report = run_summary(stats, 0)
    report.pop("events")
    if as_json:
        emit_json(report)
    else:
        click.echo(
            f"dispatched {report['dispatches']} job(s): {report['completed']} completed, "
            f"{report['failed']} failed, {report['aborted']} aborted"
        )


def stop_on_signals() -> Stop:
    """A Stop that SIGTERM and Ctrl-C set (long work stops between saves, never inside one)."""
    from sheratan.dispatch.runner import Stop

    stop = Stop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def follow_until_stopped(
    opened: Home, config: EngineConfig, name: str, progress: Callable[[int], None]
) -> Any:
    """Run ``dispatch --follow`` until SIGTERM or Ctrl-C (both stop it cleanly, exit 0)."""
    from sheratan.dispatch.service import follow as run_follow
    from sheratan.dispatch.service import resumes_after

    stop = stop_on_signals()
    last = resumes_after(opened, name)
    where = "from the start" if last is None else f"after position {last}"
    click.echo(f"dispatcher:{name} following {opened.path} ({where}); stop with Ctrl-C", err=True)
    stats = run_follow(opened, config, stop, name=name, progress=progress)
    click.echo(f"dispatcher:{name} stopped", err=True)
    return stats


@cli.command()
@file_option(
    "--workers",
    "workers_file",
    help="A workers file of profiles (default: the shipped policies/workers.example.json).",
)
@click.option("--jobs", type=click.IntRange(min=1, max=10_000_000), required=True)
@payer_options
@engine_options
@quiet_option
@common
def simulate(
    workers_file: Path | None,
    jobs: int,
    payer: str | None,
    budget_micros: int | None,
    scoring: Path | None,
    system_policy: Path | None,
    gates: Path | None,
    limits: Path | None,
    policy: str,
    epsilon: float | None,
    seed: int,
    home: str | None,
    as_json: bool,
) -> None:
    """Run the real engine and store with simulated workers on virtual time.

    Its jobs and workers live in a namespace of their own: it never runs a real job nor
    routes to a real worker, and dispatch never runs its jobs. Ctrl-C cancels its open jobs.
    With --payer, every job is paid from that account (opened first with `account open`).
    """
    from sheratan.dispatch.service import EngineConfig, Paid, SimulationInterruptedError
    from sheratan.dispatch.service import simulate as run_simulation
    from sheratan.workers.simulated import EXAMPLE_WORKERS, load_profiles

    opened = open_home(home)
    config = EngineConfig.load(
        policy=policy,
        epsilon=epsilon,
        seed=seed,
        scoring_path=scoring,
        gates_path=gates,
        limits_path=limits,
        system_path=system_policy,
    )
    profiles = load_profiles(workers_file or EXAMPLE_WORKERS)
    stop = stop_on_signals()
    try:
        with showing() as shown, shown.counting("simulating", jobs, "jobs") as advance:
            report = run_simulation(
                opened,
                config,
                profiles,
                jobs,
                progress=advance,
                stop=stop,
                paid=Paid(payer, budget_micros),
            )
    except SimulationInterruptedError as stopped:
        click.echo(str(stopped), err=True)
        raise click.exceptions.Exit(130) from None
    if as_json:
        emit_json(report)
        return
    click.echo(
        f"{report['jobs']} jobs, {report['events']} events, {report['decisions']} decisions; "
        f"mean dispatch score {report['mean_score']:.3f}, success rate "
        f"{report['success_rate']:.1%}"
    )
    rows = [(w, s["chosen"], f"{s['mean_score']:.3f}") for w, s in report["per_worker"].items()]
    click.echo(table(rows, ("worker", "chosen", "mean score")))


# -------------------------------------------------------------------- system


@cli.group()
def system() -> None:
    """The system state (OPERATIONAL, DEGRADED, REFLECTIVE, RECOVERY, PAUSED) and its alarms."""


def simulation_option(command: F) -> F:
    return click.option(
        "--simulation", is_flag=True, help="The simulations' own system state, not real work's."
    )(command)


@system.command("state")
@simulation_option
@reading
def system_state(simulation: bool, home: str | None, as_json: bool) -> None:
    """The state, since when and why, its open alarms, and what dispatch does in it."""
    from sheratan import system_report as system_service

    report = system_service.system_report(open_home(home), SIMULATION if simulation else "")
    if as_json:
        emit_json(report)
        return
    click.echo(
        f"{report['state']} since {report['since'] or 'the start'}"
        + (f" ({report['cause']}: {report['reason']})" if report["cause"] else "")
    )
    click.echo(f"dispatch: {report['dispatch']}; {report['queued']} job(s) queued")
    for alarm in report["alarms"]:
        click.echo(f"alarm {alarm['rule']} ({alarm['severity']}): {alarm['detail']}")


@system.command("transition")
@click.argument("target", metavar="STATE")
@click.option("--reason", required=True, help="Why (recorded with the transition).")
@simulation_option
@common
def system_transition(
    target: str, reason: str, simulation: bool, home: str | None, as_json: bool
) -> None:
    """Move the system to STATE; an illegal transition is refused and nothing is recorded."""
    from sheratan import system_report as system_service

    namespace = SIMULATION if simulation else ""
    state = system_service.transition(open_home(home), target, reason, namespace)
    emit_json(state) if as_json else click.echo(f"system {state['state']}: {reason}")


@system.command("history")
@simulation_option
@reading
def system_history(simulation: bool, home: str | None, as_json: bool) -> None:
    """Every transition and alarm, oldest first."""
    from sheratan import system_report as system_service

    rows = system_service.history(open_home(home), SIMULATION if simulation else "")
    if as_json:
        emit_json(rows)
        return
    click.echo(table([_history_cells(r) for r in rows], ("at", "event", "what", "detail")))


def _history_cells(row: dict[str, Any]) -> tuple[Any, ...]:
    """A system history row as (at, event, what, detail), whichever kind of event it is."""
    if "to_state" in row:
        what, detail = (
            f"{row['from_state']} -> {row['to_state']}",
            f"{row['cause']}: {row['reason']}",
        )
    elif "rule" in row:
        what, detail = row["rule"], row["detail"]
    elif "trigger" in row:
        what, detail = row["action"], f"{row['trigger']}: {row['detail']}"
    else:
        what, detail = row["outcome"], row["detail"]
    return row["at"], row["topic"], what, detail


# -------------------------------------------------------------------- policy


@cli.group("policy")
def policy_group() -> None:
    """What was learned: priors per intent and action."""


@policy_group.command("show")
@click.option("--intent", default=None, help="Only this intent.")
@file_option("--gates", help="Show the gates as merged with this file (as dispatch --gates would).")
@file_option(
    "--scoring", help="Show the scoring as merged with this file (as dispatch --scoring would)."
)
@reading
def policy_show(
    intent: str | None,
    gates: Path | None,
    scoring: Path | None,
    home: str | None,
    as_json: bool,
) -> None:
    """The current priors, and the effective gates and scoring with each value's source."""
    from sheratan.policy_report import effective_policies, effective_text, priors_rows
    from sheratan.views import PRIORS

    effective = effective_policies(gates, scoring)
    rows = priors_rows(open_home(home).views.current(PRIORS), intent)
    if as_json:
        emit_json({"priors": rows, **effective})
        return
    click.echo(
        table(
            [(r["intent"], r["action"], r["visits"], f"{r['mean_score']:.3f}") for r in rows],
            ("intent", "action", "visits", "mean score"),
        )
    )
    click.echo(effective_text(effective))


@policy_group.command("diff")
@click.option("--from", "start", type=click.IntRange(min=0), required=True, help="A log position.")
@click.option(
    "--to", "end", type=click.IntRange(min=0), required=True, help="A later log position."
)
@click.option("--intent", default=None, help="Only this intent.")
@reading
def policy_diff(start: int, end: int, intent: str | None, home: str | None, as_json: bool) -> None:
    """What was learned between two positions."""
    from sheratan.policy_report import priors_diff
    from sheratan.views import PRIORS

    if end < start:
        raise click.BadParameter("--to must not be before --from", param_hint="--to")
    views = open_home(home).views
    rows = priors_diff(views.as_of(PRIORS, start), views.as_of(PRIORS, end), intent)
    if as_json:
        emit_json({"from": start, "to": end, "changes": rows})
        return
    click.echo(
        table(
            [
                (
                    r["intent"],
                    r["action"],
                    f"+{r['visits_added']}",
                    _fmt(r["mean_before"]),
                    _fmt(r["mean_after"]),
                )
                for r in rows
            ],
            ("intent", "action", "visits", "mean before", "mean after"),
        )
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# ------------------------------------------------------------------- rebuild


class ViewChoice(click.Choice[str]):
    """The views' names (``rebuild --view``), looked up when click first needs them (a parse,
    ``rebuild --help``): they live in sheratan.views, whose import loads the store."""

    def __init__(self) -> None:  # no choices yet: ``choices`` reads them
        self.case_sensitive = True

    @functools.cached_property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        from sheratan.views import VIEW_KINDS

        return tuple(sorted(VIEW_KINDS))


@cli.command()
@click.option(
    "--at", "at", type=click.IntRange(min=0), default=None, help="Fold only up to this position."
)
@click.option(
    "--view",
    "view_names",
    type=ViewChoice(),
    multiple=True,
    help="Which view (default: all).",
)
@quiet_option
@reading
def rebuild(at: int | None, view_names: tuple[str, ...], home: str | None, as_json: bool) -> None:
    """Rebuild views from position 0 and swap them in; --at shows them as of a position."""
    from sheratan.views import VIEW_KINDS

    opened = open_home(home)
    names = list(view_names or sorted(VIEW_KINDS))
    kinds = [VIEW_KINDS[name] for name in names]
    total = opened.log.last_position() if at is None else at
    started = time.perf_counter()
    with showing() as shown, shown.counting("rebuilding views", total, "events") as advance:
        views = (
            opened.views.as_of_all(kinds, at, advance)
            if at is not None
            else opened.views.rebuild_all(kinds, advance)
        )
        advance(total)
    seconds = round(time.perf_counter() - started, 3)  # one pass folds them all
    report = {
        name: _view_summary(view) | {"seconds": seconds}
        for name, view in zip(names, views, strict=True)
    }
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


def existing_file(*decls: str, help: str, required: bool = False) -> Callable[[F], F]:
    """An option naming a file that must exist (a key, a checkpoint, a proof)."""
    return click.option(
        *decls,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=required,
        default=None,
        help=help,
    )


@cli.group()
def audit() -> None:
    """Prove the history was not altered."""


@audit.command("verify")
@existing_file("--pubkey", help="Also check the signed checkpoints against the log with this key.")
@existing_file("--checkpoint", "checkpoint_file", help="An exported checkpoint (needs --pubkey).")
@quiet_option
@common
def audit_verify(
    pubkey: Path | None, checkpoint_file: Path | None, home: str | None, as_json: bool
) -> None:
    """Recompute the whole hash chain (and signed tree heads); exit 1 naming what failed."""
    from sheratan.audit import service as audit_service

    if checkpoint_file is not None and pubkey is None:
        raise click.UsageError("--checkpoint needs --pubkey")
    opened = open_home(home)
    with showing() as shown:
        # no total: the files are the evidence here, not what the (maybe damaged) log says
        with shown.counting("verifying the hash chain", unit="events") as advance:
            result = opened.verify(advance)
            advance(result.verified)
        signed = None
        if pubkey:
            shown.say("recomputing the signed tree heads from the log")
            signed = audit_service.verify_signed(opened.path, pubkey, checkpoint_file)
    ok = result.ok and (signed is None or signed.ok)
    if as_json:
        signed_part = {"chain_ok": result.ok, "signed": signed.summary()} if signed else {}
        emit_json({**result.summary(), **signed_part, "ok": ok})
    else:
        if result.ok:
            click.echo(
                f"{result.verified}/{result.events} events verified, "
                f"{result.checkpoints} checkpoints hold, head {result.head[:16]}"
            )
        else:
            click.echo(f"FAILED: {result.problem} ({result.verified} events verified before it)")
        if signed is not None and signed.ok:
            sizes = ", ".join(str(c["tree_size"]) for c in signed.checked) or "none"
            click.echo(f"{len(signed.checked)} signed checkpoints hold (tree sizes {sizes})")
        elif signed is not None:
            click.echo(f"FAILED: {signed.problem}")
    if not ok:
        sys.exit(1)


@audit.command("checkpoint")
@existing_file("--sign", "key_file", help="Sign a Merkle tree head over the log with this key.")
@file_option(
    "--export", help="Also write the signed checkpoint to this file (for an outside party)."
)
@common
def audit_checkpoint(
    key_file: Path | None, export: Path | None, home: str | None, as_json: bool
) -> None:
    """Record the current position and chain head as a checkpoint (--sign: a signed one)."""
    from sheratan.audit import service as audit_service

    if key_file is None:
        if export is not None:
            raise click.UsageError("--export needs --sign")
        record = open_home(home).ledger.checkpoint()
        if as_json:
            emit_json(record)
        else:
            click.echo(f"checkpoint at {record['pos']}: {record['hash']}")
        return
    signed = audit_service.record_checkpoint(open_home(home), key_file, export, warn)
    if as_json:
        emit_json(to_plain(signed))
    else:
        click.echo(f"signed checkpoint at tree size {signed.tree_size}: root {signed.root}")


@audit.command("keygen")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="A folder outside the home for sheratan-signing.key and .pub.",
)
@click.option("--force", is_flag=True, help="Replace keys already in --out.")
@common
def audit_keygen(out_dir: Path, force: bool, home: str | None, as_json: bool) -> None:
    """Make an Ed25519 key pair for signed checkpoints (the private key mode 0600)."""
    from sheratan.audit import service as audit_service
    from sheratan.home import resolve_home

    made = audit_service.keygen(out_dir, resolve_home(home), force=force)
    if as_json:
        emit_json(made)
    else:
        click.echo(f"{made['private_key']}\n{made['public_key']}\nkey id {made['key_id']}")


@audit.command("prove")
@click.argument("position", type=click.IntRange(min=1))
@existing_file("--checkpoint", "checkpoint_file", help="A signed checkpoint (default: latest).")
@common
def audit_prove(
    position: int, checkpoint_file: Path | None, home: str | None, as_json: bool
) -> None:
    """An inclusion proof of the event at POSITION against a signed checkpoint."""
    from sheratan.audit import service as audit_service

    proof = audit_service.prove(open_home(home), position, checkpoint_file, warn)
    emit_proof(proof, as_json, f"position {position} in tree size {proof.checkpoint.tree_size}")


@audit.command("consistency")
@existing_file("--from", "first", help="The earlier exported signed checkpoint.", required=True)
@existing_file("--to", "second", help="The later exported signed checkpoint.", required=True)
@existing_file("--pubkey", help="Check both signatures with this public key first.")
@common
def audit_consistency(
    first: Path, second: Path, pubkey: Path | None, home: str | None, as_json: bool
) -> None:
    """A proof that the --to checkpoint's log extends the --from checkpoint's."""
    from sheratan.audit import service as audit_service

    proof = audit_service.consistency(open_home(home), first, second, pubkey, warn)
    emit_proof(proof, as_json, f"tree size {proof.first.tree_size} -> {proof.second.tree_size}")


@audit.command("verify-proof")
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@existing_file("--pubkey", help="The signer's public key (sheratan-signing.pub).", required=True)
@common
def audit_verify_proof(proof_file: Path, pubkey: Path, home: str | None, as_json: bool) -> None:
    """Check a proof with nothing but it and the public key (no home needed)."""
    from sheratan.audit import proofs as proof_codec
    from sheratan.audit.signing import load_public as load_public_key

    kind, proven = proof_codec.verify(proof_file.read_bytes(), load_public_key(pubkey))
    emit_json({"ok": True, "kind": kind, "proven": proven}) if as_json else click.echo(proven)


def emit_proof(proof: Proof, as_json: bool, what: str) -> None:
    """The proof document (the file an outsider checks) or one line about it."""
    from sheratan.audit import proofs as proof_codec

    if as_json:
        click.echo(proof_codec.encode(proof))
    else:
        click.echo(f"{what}: {len(proof.path)} path nodes (--json prints the proof)")


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@audit.command("report")
@workspace_option
@click.option(
    "--since", type=click.IntRange(min=1), default=1, show_default=True, help="A log position."
)
@reveal_option
@reading
def audit_report_cmd(
    since: int, workspace: Path | None, reveal: bool, home: str | None, as_json: bool
) -> None:
    """Events, decisions, blocked gates, breaches, quarantines, self-heals, anomalies, replay runs.

    Exits 1 when the chain does not verify (the report is printed all the same)."""
    from sheratan.analytics.audit_report import home_report, render_markdown

    opened = open_home(home)
    raw = revealing(opened, reveal)
    report = home_report(opened, since=since, workspace=workspace, reveal=raw)
    emit_json(report) if as_json else click.echo(render_markdown(report), nl=False)
    if not report["chain"]["ok"]:
        sys.exit(1)


# ----------------------------------------------------------------------- sql


@cli.command()
@click.argument("statement", required=False)
@click.option("--schema", is_flag=True, help="List the views and their columns.")
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=QUERY_TIMEOUT_S,
    show_default=True,
    help="Seconds a query may run; past it the query stops (one line, exit 2).",
)
@reveal_option
@reading
def sql(
    statement: str | None,
    schema: bool,
    output: str,
    timeout_s: float,
    reveal: bool,
    home: str | None,
    as_json: bool,
) -> None:
    """Read-only SQL over the views: events, decisions, jobs, priors_history, scores, self_heals.

    The views hold payloads redacted at the source, so no SQL function shows a secret;
    --reveal reads the raw log instead (recorded first). No file outside the views is read,
    memory is limited, and a query past --timeout stops with exit 2."""
    from sheratan.analytics.redact import redact_rows
    from sheratan.analytics.session import Analytics

    if not schema and not statement:
        raise click.UsageError("give a SELECT statement, or --schema")
    opened = open_home(home)
    raw = revealing(opened, reveal)
    with Analytics(opened.path, raw=raw) as analytics:
        if schema:
            views = analytics.schema()
            if as_json:
                emit_json(
                    {v: [{"name": n, "type": t} for n, t in cols] for v, cols in views.items()}
                )
            else:
                for view, cols in views.items():
                    click.echo(f"{view}\n" + "".join(f"  {n}  {t}\n" for n, t in cols))
            return
        result = analytics.query(statement or "", timeout_s)
        rows = result.rows
        if not raw:
            rows = redact_rows(result.columns, result.rows, analytics.recorded_workspace())
    click.echo(render_rows(result.columns, rows, "json" if as_json else output), nl=False)


# ----------------------------------------------------------------------- why


def parse_window_option(_ctx: Any, param: click.Parameter, value: str | None) -> Any:
    from sheratan.analytics.why import parse_window

    if value is None:
        return None
    try:
        return parse_window(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param=param) from None


@contextmanager
def asking_why(home: str | None, workspace: Path | None, reveal: bool = False) -> Iterator[Why]:
    from sheratan.analytics.session import Analytics
    from sheratan.analytics.why import Why

    opened = open_home(home)
    with Analytics(opened.path, raw=revealing(opened, reveal)) as analytics:
        yield Why(analytics, workspace)


@cli.group()
def why() -> None:
    """Why a decision was taken: read-only, redacted answers from the log."""


@why.command("latest")
@click.option("--intent", default=None, help="Only this intent (dispatch_job, recover_failure).")
@workspace_option
@reveal_option
@reading
def why_latest(
    intent: str | None, workspace: Path | None, reveal: bool, home: str | None, as_json: bool
) -> None:
    """The most recent decision."""
    from sheratan.analytics.text import node_text

    with asking_why(home, workspace, reveal) as asked:
        answer = asked.latest(intent)
    emit_json(answer) if as_json else click.echo(node_text(answer))


@why.command("trace")
@click.argument("trace_id", callback=parse_uuid)
@workspace_option
@reveal_option
@reading
def why_trace(
    trace_id: UUID, workspace: Path | None, reveal: bool, home: str | None, as_json: bool
) -> None:
    """Every node of a trace (also accepts a node id)."""
    from sheratan.analytics.text import node_text

    with asking_why(home, workspace, reveal) as asked:
        answer = asked.trace(str(trace_id))
    if as_json:
        emit_json(answer)
    else:
        click.echo("\n\n".join(node_text(n) for n in answer["nodes"]))


@why.command("job")
@click.argument("job_id", callback=parse_uuid)
@workspace_option
@reveal_option
@reading
def why_job(
    job_id: UUID, workspace: Path | None, reveal: bool, home: str | None, as_json: bool
) -> None:
    """A job as the log has it, and every decision taken on it."""
    from sheratan.analytics.text import node_text

    with asking_why(home, workspace, reveal) as asked:
        answer = asked.job(str(job_id))
    if as_json:
        emit_json(answer)
        return
    click.echo(fields(answer["job"]))
    for node in answer["decisions"]:
        click.echo("\n" + node_text(node))


@why.command("stats")
@click.option("--intent", default=None, help="Only this intent.")
@click.option("--window", callback=parse_window_option, help="Only the last 30m, 12h, 7d, 2w, ...")
@reveal_option
@reading
def why_stats(
    intent: str | None, window: Any, reveal: bool, home: str | None, as_json: bool
) -> None:
    """Count, success rate, mean score, p50/p95 latency and cost, per action, failures."""
    from sheratan.analytics.text import stats_text

    with asking_why(home, None, reveal) as asked:
        answer = asked.stats(intent, window)
    emit_json(answer) if as_json else click.echo(stats_text(answer))


@why.command("drift")
@click.option(
    "--window",
    callback=parse_window_option,
    default="1h",
    show_default=True,
    help="Width of each time window.",
)
@click.option("--intent", default=None, help="Only this intent.")
@click.option(
    "--delta",
    type=click.FloatRange(min=0),
    default=PH_DELTA,
    show_default=True,
    help="Page-Hinkley: tolerated change of the normalized mean.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0, min_open=True),
    default=PH_LAMBDA,
    show_default=True,
    help="Page-Hinkley: alarm threshold (lambda).",
)
@reading
def why_drift(
    window: Any,
    intent: str | None,
    delta: float,
    threshold: float,
    home: str | None,
    as_json: bool,
) -> None:
    """Latency and cost p50/p95 per (intent, action) per window against the baseline."""
    from sheratan.analytics.text import drift_text

    with asking_why(home, None) as asked:
        report = asked.drift(window, intent=intent, delta=delta, threshold=threshold)
    emit_json(report) if as_json else click.echo(drift_text(report))


# -------------------------------------------------------------------- replay


@cli.command()
@click.option("--exact", "mode", flag_value="exact", help="Re-run decisions; compare hashes.")
@click.option(
    "--counterfactual",
    "mode",
    flag_value="counterfactual",
    help="Estimate another policy's mean score from the logged probabilities.",
)
@click.option(
    "--regression",
    "mode",
    flag_value="regression",
    help="Re-score and re-select history under new weights or priors.",
)
@click.option("--trace", "trace_id", callback=parse_uuid, help="exact: only this trace.")
@click.option(
    "--since", type=click.IntRange(min=1), default=None, help="exact: from this position."
)
@click.option("--all", "everything", is_flag=True, help="exact: every decision (the default).")
@click.option(
    "--workers",
    "processes",
    type=click.IntRange(min=1, max=256),
    default=None,
    help="exact: processes that replay ranges of the log (default: one per core; one for "
    "a log under 40,000 events or with --trace).",
)
@click.option(
    "--policy",
    default=None,
    help="counterfactual: always:<worker>, random or ucb:c=<c>,epsilon=<e>.",
)
@click.option("--estimator", type=click.Choice(ESTIMATORS), default="dr", show_default=True)
@click.option(
    "--ci",
    "confidence",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Confidence of the bootstrap interval.",
)
@click.option(
    "--resamples",
    type=click.IntRange(min=1, max=100_000),
    default=1000,
    show_default=True,
    help="Bootstrap resamples.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option(
    "--intent",
    default="dispatch_job",
    show_default=True,
    help="counterfactual: the decisions to estimate over.",
)
@click.option(
    "--last",
    type=click.IntRange(min=2),
    default=None,
    help="counterfactual: only the most recent N decisions.",
)
@click.option("--at", "node", callback=parse_uuid, help="counterfactual: one decision node.")
@click.option("--action", default=None, help="counterfactual --at: the action (key or worker).")
@file_option("--weights", help="regression: a scoring.json with new weights.")
@file_option("--priors", help="regression: a priors.json with new starter priors.")
@click.option(
    "--fail-if-drop",
    type=float,
    default=None,
    help="regression: exit 1 when the mean score drops by more than this.",
)
@quiet_option
@common
def replay(
    mode: str | None,
    trace_id: UUID | None,
    since: int | None,
    everything: bool,
    processes: int | None,
    policy: str | None,
    estimator: str,
    confidence: float,
    resamples: int,
    seed: int,
    intent: str,
    last: int | None,
    node: UUID | None,
    action: str | None,
    weights: Path | None,
    priors: Path | None,
    fail_if_drop: float | None,
    home: str | None,
    as_json: bool,
) -> None:
    """Re-run history: --exact (determinism), --counterfactual, --regression."""
    from sheratan.analytics.text import replay_text
    from sheratan.replay.parallel import default_workers
    from sheratan.replay.service import (
        run_counterfactual,
        run_counterfactual_at,
        run_exact,
        run_regression,
    )

    if mode is None:
        raise click.UsageError("choose one of --exact, --counterfactual, --regression")
    opened = open_home(home)
    with showing() as shown:
        if mode == "exact":
            if everything and (trace_id or since):
                raise click.UsageError("--all cannot be combined with --trace or --since")
            last_position = opened.ledger.last_position()
            with shown.counting("replaying", last_position, "positions") as advance:
                summary = run_exact(
                    opened,
                    trace_id=str(trace_id) if trace_id else None,
                    since=since or 1,
                    workers=processes or default_workers(),
                    progress=advance,
                )
            failed = not summary["ok"]
        elif mode == "counterfactual":
            if node is not None and not action:
                raise click.UsageError("--at needs --action")
            if node is None and not policy:
                raise click.UsageError("--counterfactual needs --policy (or --at NODE --action A)")
            shown.say("counterfactual: reading the logged decisions and estimating")
            if node is not None:
                summary = run_counterfactual_at(opened, str(node), cast(str, action))
            else:
                summary = run_counterfactual(
                    opened,
                    cast(str, policy),
                    estimator=estimator,
                    confidence=confidence,
                    resamples=resamples,
                    seed=seed,
                    intent=intent,
                    last=last,
                )
            failed = False
        else:
            if weights is None and priors is None:
                raise click.UsageError("--regression needs --weights and/or --priors")
            last_position = opened.ledger.last_position()
            with shown.counting("replaying", last_position, "positions") as advance:
                summary = run_regression(
                    opened,
                    weights=weights,
                    priors=priors,
                    fail_if_drop=fail_if_drop,
                    progress=advance,
                )
            failed = not summary["ok"]
    emit_json(summary) if as_json else click.echo(replay_text(summary))
    if failed:
        sys.exit(1)


# --------------------------------------------------------------------- bench


@cli.group()
def bench() -> None:
    """Measure against anchors in one run; prints ratios."""


@bench.command("store")
@click.option("--jobs", type=click.IntRange(min=10), default=20_000, show_default=True)
@click.option(
    "--rebuild-events", type=click.IntRange(min=1000), default=1_000_000, show_default=True
)
@click.option(
    "--process-jobs",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Jobs simulated for the whole-rebuild-process figure.",
)
@click.option("--quick", is_flag=True, help="A small run (2,000 jobs, 100,000 events).")
@quiet_option
@common
def bench_store(
    jobs: int, rebuild_events: int, process_jobs: int, quick: bool, home: str | None, as_json: bool
) -> None:
    """The ledger against SQLite, POPO, raw msgspec lines and bare fsync."""
    from sheratan.bench.store import run_store_bench

    if quick:
        jobs, rebuild_events, process_jobs = 2_000, 100_000, 2_000
    with showing() as shown:
        report = run_store_bench(
            jobs=jobs,
            rebuild_events=rebuild_events,
            process_jobs=process_jobs,
            progress=shown.say,
        )
    echo_bench(report, as_json)


@bench.command("decide")
@click.option("--decisions", type=click.IntRange(min=100), default=5_000, show_default=True)
@click.option("--jobs", type=click.IntRange(min=100), default=5_000, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1, max=20), default=3, show_default=True)
@click.option(
    "--replay-jobs",
    type=click.IntRange(min=100),
    default=20_000,
    show_default=True,
    help="Simulated jobs in the log exact replay is measured on.",
)
@quiet_option
@common
def bench_decide(
    decisions: int, jobs: int, repeats: int, replay_jobs: int, home: str | None, as_json: bool
) -> None:
    """One decision's CPU, simulate's jobs/s and exact replay (in this process and as whole
    CLI processes), against msgspec-only anchors."""
    from sheratan.bench.decide import run_decide_bench

    with showing() as shown:
        report = run_decide_bench(
            decisions=decisions,
            jobs=jobs,
            repeats=repeats,
            replay_jobs=replay_jobs,
            progress=shown.say,
        )
    echo_bench(report, as_json)


@bench.command("analytics")
@click.option(
    "--decisions",
    type=click.IntRange(min=100, max=20_000_000),
    default=1_000_000,
    show_default=True,
    help="Decision events (made + scored) in the generated log.",
)
@click.option(
    "--quick",
    is_flag=True,
    help="A small run: 20,000 decision events; counterfactual over 10,000, 200 resamples.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Generate the log here once and reuse it while the parameters match.",
)
@click.option("--repeats", type=click.IntRange(min=1, max=20), default=3, show_default=True)
@click.option(
    "--counterfactual-decisions", type=click.IntRange(min=1), default=100_000, hidden=True
)
@click.option("--resamples", type=click.IntRange(min=1), default=1000, hidden=True)
@quiet_option
@common
def bench_analytics(
    decisions: int,
    quick: bool,
    keep: Path | None,
    repeats: int,
    counterfactual_decisions: int,
    resamples: int,
    home: str | None,
    as_json: bool,
) -> None:
    """why stats, trace, exact replay, counterfactual against Parquet and msgspec anchors."""
    from sheratan.bench.analytics import run_analytics_bench

    if quick:
        decisions, counterfactual_decisions, resamples = 20_000, 10_000, 200
    with showing() as shown:
        report = run_analytics_bench(
            decisions=decisions,
            home=keep,
            repeats=repeats,
            counterfactual_decisions=counterfactual_decisions,
            resamples=resamples,
            progress=shown,
        )
    echo_bench(
        report,
        as_json,
        f"{report['decision_events']:,} decision events, {report['events']:,} events; "
        f"session open cold {report['session_open_cold_s']:.2f} s, "
        f"warm {report['session_open_warm_s']:.3f} s; "
        f"why stats in a fresh process {report['why_stats_process_s']:.2f} s",
    )


@bench.command("audit")
@click.option(
    "--events",
    type=click.IntRange(min=1_000, max=20_000_000),
    default=1_000_000,
    show_default=True,
    help="Events in the generated log.",
)
@click.option("--quick", is_flag=True, help="A small run: 50,000 events.")
@quiet_option
@common
def bench_audit(events: int, quick: bool, home: str | None, as_json: bool) -> None:
    """audit verify against a bare sha256 pass, audit prove latency, proof size vs log2(n)."""
    from sheratan.bench.audit import run_audit_bench

    with showing() as shown:
        report = run_audit_bench(events=50_000 if quick else events, progress=shown.say)
    echo_bench(report, as_json, f"{report['events']:,} events, {report['log_bytes'] / 1e6:,.1f} MB")


@bench.command("accounts")
@click.option(
    "--events",
    type=click.IntRange(min=10_000, max=20_000_000),
    default=1_000_000,
    show_default=True,
    help="Events in the generated log.",
)
@click.option(
    "--simulate-jobs",
    type=click.IntRange(min=100, max=1_000_000),
    default=5_000,
    show_default=True,
    help="Jobs per simulate run (paid against plain).",
)
@quiet_option
@common
def bench_accounts(events: int, simulate_jobs: int, home: str | None, as_json: bool) -> None:
    """The balance of one account from the accounts view against a scan of the log, and
    simulate with accounts, limits and anomaly rules against simulate without them."""
    from sheratan.bench.accounts import run_accounts_bench

    with showing() as shown:
        report = run_accounts_bench(events=events, simulate_jobs=simulate_jobs, progress=shown.say)
    echo_bench(report, as_json, f"{report['events']:,} events")


@bench.command("runtime")
@click.option(
    "--samples",
    type=click.IntRange(min=10, max=100_000),
    default=200,
    show_default=True,
    help="Jobs created one at a time for the latency figures.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=100, max=1_000_000),
    default=2_000,
    show_default=True,
    help="Noop jobs for the throughput figure (and the simulate anchor).",
)
@quiet_option
@common
def bench_runtime(samples: int, jobs: int, home: str | None, as_json: bool) -> None:
    """Create-to-start latency against a pipe round trip, end-to-end throughput against
    simulate, and the CPU of an idle dispatcher and worker (real processes)."""
    from sheratan.bench.runtime import run_runtime_bench

    with showing() as shown:
        report = run_runtime_bench(samples=samples, jobs=jobs, progress=shown.say)
    echo_bench(report, as_json)


@bench.command("api")
@click.option(
    "--requests",
    type=click.IntRange(min=80, max=1_000_000),
    default=2_000,
    show_default=True,
    help="POSTs in all, shared by 8 client threads.",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=10, max=100_000),
    default=300,
    show_default=True,
    help="Claim→result round trips of one outside worker.",
)
@click.option(
    "--decisions",
    type=click.IntRange(min=1, max=100_000),
    default=1_000,
    show_default=True,
    help="Decisions in the log DecisionView renders.",
)
@click.option(
    "--events",
    type=click.IntRange(min=1_000, max=20_000_000),
    default=1_000_000,
    show_default=True,
    help="Events in the log the views are timed on.",
)
@click.option(
    "--only",
    type=click.Choice(["create", "pull", "page", "views"]),
    multiple=True,
    help="Run only these figures (default: all).",
)
@quiet_option
@common
def bench_api(
    requests: int,
    rounds: int,
    decisions: int,
    events: int,
    only: tuple[str, ...],
    home: str | None,
    as_json: bool,
) -> None:
    """The API's figures: job create over HTTP (8 clients) against a bare Litestar route, an
    outside worker's claim→result round trip, DecisionView's first render in Chromium, the
    slider's views as of positions in a large log against a fold from position 0."""
    from sheratan.bench.api import GROUPS, run_api_bench

    with showing() as shown:
        report = run_api_bench(
            requests=requests,
            rounds=rounds,
            decisions=decisions,
            events=events,
            only=frozenset(only or GROUPS),
            progress=shown.say,
        )
    echo_bench(report, as_json)


@bench.command("scale")
@click.option(
    "--dsn",
    default=None,
    help="A PostgreSQL server to measure on (default: $SHERATAN_BENCH_DSN, else a scratch "
    "one started with scripts/postgres-local.sh); each figure makes its own databases.",
)
@click.option(
    "--events-jobs",
    type=click.IntRange(min=400, max=1_000_000),
    default=6_000,
    show_default=True,
    help="Simulated jobs whose events the recorder figure saves (about 11 events a job).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=10, max=1_000_000),
    default=3_000,
    show_default=True,
    help="Jobs each dispatch run settles.",
)
@click.option(
    "--dispatchers",
    type=click.IntRange(min=1, max=8),
    default=3,
    show_default=True,
    help="The most dispatcher processes tried (the curve runs 1..N).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1, max=20),
    default=3,
    show_default=True,
    help="Runs of the dispatch curve, interleaved (each count's median is kept).",
)
@click.option(
    "--load-seconds",
    type=click.FloatRange(min=1.0, max=3_600.0),
    default=10.0,
    show_default=True,
    help="How long the exporter-lag figure's steady load lasts.",
)
@quiet_option
@common
def bench_scale(
    dsn: str | None,
    events_jobs: int,
    jobs: int,
    dispatchers: int,
    repeats: int,
    load_seconds: float,
    home: str | None,
    as_json: bool,
) -> None:
    """Sheratan on PostgreSQL: events saved by Sheratan against the same recorder bare,
    dispatch throughput with 1..N dispatcher processes on one database, exporter lag at
    half the highest throughput. A figure that cannot run is skipped with its reason."""
    from sheratan.bench.scale import run_scale_bench

    with showing() as shown:
        report = run_scale_bench(
            events_jobs=events_jobs,
            jobs=jobs,
            dispatchers=dispatchers,
            repeats=repeats,
            load_seconds=load_seconds,
            dsn=dsn,
            progress=shown.say,
        )
    echo_bench(report, as_json)


@bench.command("all")
@click.option("--quick", is_flag=True, help="Tiny sizes: a smoke run of every bench (a minute).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the JSON document to this file (for bench compare).",
)
@click.option(
    "--only",
    multiple=True,
    metavar="BENCH",
    help="Run only this bench (store, decide, ...); repeat for more (default: all).",
)
@quiet_option
@common
def bench_all(
    quick: bool, out: Path | None, only: tuple[str, ...], home: str | None, as_json: bool
) -> None:
    """Every bench with its anchors in one run (about 15 minutes on 2 cores; --quick: a
    minute): figures, ratios and the machine's description in one JSON document. Exit 1
    when a bench failed (the others still run)."""
    from sheratan.bench.suite import NAMES, run_all

    unknown = [name for name in only if name not in NAMES]
    if unknown:
        choices = ", ".join(NAMES)
        raise click.BadParameter(f"no bench {unknown[0]!r} (one of {choices})", param_hint="--only")
    with showing() as shown:
        document = run_all(shown, quick=quick, only=only)
    if out is not None:
        out.write_bytes(msgspec.json.format(msgspec.json.encode(document)) + b"\n")
    if as_json:
        emit_json(document)
    else:
        click.echo(suite_table(document))
        for bench_name, part in document["benches"].items():
            for name, why_not in part.get("skipped", {}).items():
                click.echo(f"skipped {bench_name}/{name}: {why_not}")
        for name in document["failed"]:
            click.echo(f"bench {name} failed: {document['benches'][name]['error']}")
    if document["failed"]:
        sys.exit(1)


@bench.command("compare")
@click.argument("first", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("second", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@common
def bench_compare(first: Path, second: Path, home: str | None, as_json: bool) -> None:
    """The ratio of every figure in two `bench all` documents, and its change."""
    from sheratan.bench.compare import compare, load_report

    compared = compare(load_report(first), load_report(second))
    if as_json:
        emit_json({"first_file": str(first), "second_file": str(second), **compared})
        return
    rows = [
        (
            row["figure"],
            f"{row['first']:.4g}",
            f"{row['second']:.4g}",
            "-" if row["change"] is None else f"{row['change']:+.1%}",
        )
        for row in compared["figures"]
    ]
    click.echo(table(rows, ("figure", f"ratio in {first.name}", f"in {second.name}", "change")))
    for side, path in (("only_first", first), ("only_second", second)):
        for name in compared[side]:
            click.echo(f"only in {path}: {name}")


def suite_table(document: dict[str, Any]) -> str:
    """One row per figure of a `bench all` document, bench by bench."""
    figures = {
        f"{bench}/{name}": figure
        for bench, part in document["benches"].items()
        for group in ("figures", "info")
        for name, figure in part.get(group, {}).items()
    }
    return bench_table({"figures": figures})


@bench.command("cli")
@click.option("--repeats", type=click.IntRange(min=1, max=100), default=11, show_default=True)
@quiet_option
@common
def bench_cli(repeats: int, home: str | None, as_json: bool) -> None:
    """CLI start: --help, job show, job create as whole processes against python -c pass."""
    from sheratan.bench.cli_start import run_cli_bench

    with showing() as shown:
        report = run_cli_bench(repeats=repeats, progress=shown.say)
    echo_bench(report, as_json)


def echo_bench(report: dict[str, Any], as_json: bool, heading: str = "") -> None:
    """A bench's report: its JSON, or the heading, its figures and its info figures as
    tables (figures against their anchors, ratios, targets) and the figures it skipped."""
    if as_json:
        emit_json(report)
        return
    if heading:
        click.echo(heading)
    click.echo(bench_table(report))
    if report.get("info"):
        click.echo(bench_table({"figures": report["info"]}))
    for name, why_not in report.get("skipped", {}).items():
        click.echo(f"skipped {name}: {why_not}")


def bench_table(report: dict[str, Any]) -> str:
    rows = [
        (
            name,
            f"{f['value']:,.1f} {f['unit']}",
            f["anchor"],
            f"{f['ratio']:.3f}",
            f["target"],
            {True: "yes", False: "NO", None: "-"}[f["met"]],
        )
        for name, f in report["figures"].items()
    ]
    return table(rows, ("figure", "value", "anchor", "ratio", "target", "met"))


def main() -> None:
    cli(prog_name="sheratan")


if __name__ == "__main__":
    main()
