"""Command line: `flask seed`, `flask calendar`, `flask worker`, `flask scheduler`, `flask tokens` (and
Flask-Migrate's `flask db`)."""

from __future__ import annotations

import signal
import threading
from datetime import date, timedelta
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from . import PACKAGE_DIR

DEFAULT_DATA_DIR = PACKAGE_DIR / "data" / "hue"


def _cli_actor():
    """Who runs this command, for the audit log: `cli:<system user>`."""
    from .services import audit

    return audit.Actor.cli()


@click.command("seed")
@with_appcontext
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=DEFAULT_DATA_DIR, show_default=True,
              help="The city's data directory (city.yaml, wards, categories, agencies, routing rules).")
@click.option("--demo", is_flag=True, help="Also create the demo accounts (refused in production).")
@click.option("--if-empty", is_flag=True,
              help="If a city is already loaded, only add what it lacks (its working calendar): deployments never "
                   "revert an admin's edits.")
def seed_command(data_dir: Path, demo: bool, if_empty: bool) -> None:
    """Load a city's wards, categories, agencies and routing rules. Running it again changes nothing."""
    from .services import seed

    if demo and current_app.config["HUE_ENV"] == "production":
        raise click.UsageError("--demo creates accounts with a published password: refused in production")
    if if_empty and seed.city_loaded():
        try:
            added = seed.complete_city(data_dir)  # what a newer release adds to a loaded city
        except seed.SeedError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo("a city is already loaded (--if-empty): " + (
            "added " + ", ".join(f"{table} ({counts['created']} created, {counts['updated']} updated)"
                                 for table, counts in added.items()) if added else "nothing to do"))
        return
    try:
        summary = seed.load_city(data_dir, demo=demo, actor=_cli_actor())
    except seed.SeedError as exc:
        raise click.ClickException(str(exc)) from exc
    for table, counts in summary.items():
        click.echo(f"{table:>15}: {counts['created']} created, {counts['updated']} updated, "
                   f"{counts['unchanged']} unchanged")
    if demo:
        click.echo(f"demo accounts: password {seed.demo_password(data_dir)!r} "
                   f"({', '.join(seed.demo_usernames(data_dir))})")
        from sqlalchemy import text

        from .extensions import db
        from .services import demo as demo_data
        from .services import mapgrid, metrics

        if db.session.scalar(text("SELECT NOT EXISTS (SELECT 1 FROM reports)")):
            click.echo(f"demo reports: {demo_data.create_reports()} created (codes DEMO-...)")
            metrics.refresh()
            metrics.refresh_results()
            mapgrid.refresh()


calendar_group = AppGroup("calendar", help="The city's working calendar: public holidays, the government's "
                                            "yearly swaps, working days and hours.")

_SWAP = (click.DateTime(["%Y-%m-%d"]), str, str)
_CITY_HELP = "The city's code (city.yaml); default: the city this instance serves."


def _city(city_code: str | None):
    from sqlalchemy import select

    from .extensions import db
    from .models import City

    query = select(City).order_by(City.id).limit(1) if city_code is None else select(City).where(City.code == city_code)
    city = db.session.scalars(query).first()
    if city is None:
        raise click.ClickException("no city is loaded (flask seed)" if city_code is None else f"no city {city_code!r}")
    return city


@calendar_group.command("add-year")
@click.argument("year", type=click.IntRange(1900, 2999))
@click.option("--day-off", "days_off", type=_SWAP, multiple=True, metavar="DATE NAME NAME_EN",
              help="A working weekday given off (repeatable): date YYYY-MM-DD, Vietnamese name, English name.")
@click.option("--working-day", "working_days", type=_SWAP, multiple=True, metavar="DATE NAME NAME_EN",
              help="A make-up working day on a weekend day (repeatable): date, Vietnamese name, English name.")
@click.option("--replace", is_flag=True,
              help="Replace the swaps the year already has (alone, without days: delete them).")
@click.option("--city", "city_code", metavar="CODE", help=_CITY_HELP)
def calendar_add_year(year: int, days_off: tuple, working_days: tuple, replace: bool, city_code: str | None) -> None:
    """Record the government's swaps of YEAR: extra days off and make-up working days.

    \b
    flask calendar add-year 2028 \\
      --day-off 2028-04-03 "Ngày nghỉ hoán đổi dịp Giỗ Tổ" "Swapped day off for Hung Kings' Day" \\
      --working-day 2028-04-08 "Ngày làm bù cho ngày nghỉ 3/4/2028" "Make-up working day for 3 April 2028"

    Public holidays come from the `holidays` package and need no entry. A year that already has swaps
    is refused unless --replace is given.
    """
    from .services import calendar

    swaps = sorted((calendar.Swap(day.date(), kind, name, name_en)
                    for kind, given in ((calendar.DAY_OFF, days_off), (calendar.WORKING_DAY, working_days))
                    for day, name, name_en in given), key=lambda swap: swap.day)
    if not swaps and not replace:
        raise click.UsageError("give at least one --day-off or --working-day (or --replace alone to delete "
                               "the year's swaps)")
    city = _city(city_code)
    try:
        before = calendar.save_year(city, year, swaps, replace=replace, actor=_cli_actor())
    except (ValueError, calendar.CalendarNotConfigured) as exc:
        raise click.ClickException(str(exc)) from exc
    replaced = f" ({before} replaced / thay {before} ngày cũ)" if before else ""
    click.echo(f"{city.code} {year}: {len(swaps)} ngày hoán đổi đã ghi / swap day(s) recorded{replaced}")


@calendar_group.command("show")
@click.argument("year", type=click.IntRange(1900, 2999))
@click.option("--city", "city_code", metavar="CODE", help=_CITY_HELP)
def calendar_show(year: int, city_code: str | None) -> None:
    """Print YEAR's working weekdays that are off (holidays, swapped days off) and its make-up working
    days, with their names, then the year's working days and hours."""
    from .services import calendar

    city = _city(city_code)
    try:
        work = calendar.build_calendar(city)
    except (ValueError, calendar.CalendarNotConfigured) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{city.name} / {city.name_en} ({city.timezone}): lịch làm việc / working calendar {year}")
    for special in work.special_days(year):
        kind = "làm bù / working day" if special.working else "nghỉ / day off"
        click.echo(f"  {special.day} {calendar.weekday_label(special.day):<8}  {kind:<20}  "
                   f"{special.name[0]} / {special.name[1]}")
    day, days, hours = date(year, 1, 1), 0, 0.0
    while day.year == year:
        if work.is_working_day(day):
            days += 1
            hours += work.working_hours(day)
        day += timedelta(days=1)
    click.echo(f"{days} ngày làm việc / working days, {hours:g} giờ làm việc / working hours")


@click.command("worker")
@with_appcontext
@click.option("--queues", "-q", help="Comma-separated queues, highest priority first (default: RQ_QUEUES).")
@click.option("--burst", is_flag=True, help="Run the jobs already queued, then exit.")
@click.option("--class", "worker_class", type=click.Choice(["simple", "fork"]),
              help="simple: jobs run in this process; fork: a work horse per job (default: WORKER_CLASS).")
def worker_command(queues: str | None, burst: bool, worker_class: str | None) -> None:
    """Run an RQ worker inside the application context."""
    from rq import SimpleWorker, Worker

    from .extensions import get_redis
    from .jobs import queue_names

    names = [q.strip() for q in queues.split(",")] if queues else queue_names()
    cls = SimpleWorker if (worker_class or current_app.config["WORKER_CLASS"]) == "simple" else Worker
    worker = cls(names, connection=get_redis())
    if "routing" in names:
        from .services import routing

        routing.warm_up()
    # with_scheduler: RQ's own scheduler runs Retry(interval=...) and enqueue_in.
    worker.work(burst=burst, with_scheduler=True, logging_level=current_app.config["LOG_LEVEL"])


@click.command("scheduler")
@with_appcontext
@click.option("--once", is_flag=True, help="Enqueue what is due now, then exit.")
def scheduler_command(once: bool) -> None:
    """Enqueue periodic jobs on time (safe to run in several replicas)."""
    from . import scheduler
    from .extensions import get_redis

    jobs = scheduler.schedule(current_app)
    if once:
        for job_id in scheduler.tick(get_redis(), jobs):
            click.echo(f"enqueued {job_id}")
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.run(get_redis(), jobs, stop)


@click.command("healthcheck")
@click.argument("component", type=click.Choice(["worker", "scheduler"]))
@with_appcontext
def healthcheck_command(component: str) -> None:
    """Exit 0 if this host's worker or scheduler is alive (for container healthchecks)."""
    import socket

    from rq import Worker

    from . import scheduler
    from .extensions import get_redis

    redis = get_redis()
    host = socket.gethostname()
    if component == "worker":
        alive = any(w.hostname == host for w in Worker.all(connection=redis))
    else:
        alive = bool(redis.exists(scheduler.alive_key(host)))
    if not alive:
        raise click.ClickException(f"no live {component} on {host}")
    click.echo(f"{component} alive on {host}")


@click.group("tokens")
def tokens_group() -> None:
    """Bearer tokens for staff accounts and agencies' systems (GET /api/v1/agency/events)."""


@tokens_group.command("create")
@with_appcontext
@click.argument("username")
@click.option("--name", help="What the token is for, e.g. `HEPCO dispatch system`.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=365, show_default=True,
              help="Days until it expires.")
def tokens_create(username: str, name: str | None, days: float) -> None:
    """Issue a token for an active account and print it (once: only its hash is kept)."""
    from sqlalchemy import select

    from .extensions import db
    from .models import Account
    from .services import audit, auth

    account = db.session.scalars(select(Account).where(Account.username == username.lower())).first()
    if account is None or not account.active:
        raise click.ClickException(f"no active account {username!r}")
    token, row = auth.issue_token(account, name=name, days=days)
    db.session.flush()
    audit.record(_cli_actor(), "token.create", "account", account.username, None,
                 {"token_id": row.id, "name": row.name, "expires_at": row.expires_at})
    db.session.commit()
    click.echo(f"token {row.id} for {account.username}, expires {row.expires_at:%Y-%m-%d %H:%M %Z}:")
    click.echo(token)


@tokens_group.command("revoke")
@with_appcontext
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by its id (as printed when it was created)."""
    from datetime import datetime, timezone

    from .extensions import db
    from .models import ApiToken
    from .services import audit

    row = db.session.get(ApiToken, token_id)
    if row is None:
        raise click.ClickException(f"no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(timezone.utc)
        audit.record(_cli_actor(), "token.revoke", "account", row.account.username, None,
                     {"token_id": row.id, "name": row.name, "revoked_at": row.revoked_at})
        db.session.commit()
    click.echo(f"token {token_id} revoked")


open311_group = AppGroup("open311", help="Open311 GeoReport v2 (/open311/v2/): the client applications' api_keys.")


@open311_group.group("keys")
def open311_keys() -> None:
    """api_keys of client applications, needed to POST service requests."""


@open311_keys.command("create")
@click.argument("name")
def open311_keys_create(name: str) -> None:
    """Issue an api_key for the client application NAME and print it (once: only its hash is kept)."""
    from .extensions import db
    from .services import open311

    try:
        key, row = open311.issue_key(name, actor=_cli_actor())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"api_key {row.id} for {row.name}:")
    click.echo(key)


@open311_keys.command("list")
def open311_keys_list() -> None:
    """The api_keys issued: id, client application, created and revoked (never the keys)."""
    from sqlalchemy import select

    from .extensions import db
    from .models import Open311Key

    for row in db.session.scalars(select(Open311Key).order_by(Open311Key.id)):
        revoked = f", revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else ""
        click.echo(f"{row.id}: {row.name} (created {row.created_at:%Y-%m-%d %H:%M}{revoked})")


@open311_keys.command("revoke")
@click.argument("key_id", type=int)
def open311_keys_revoke(key_id: int) -> None:
    """Revoke an api_key by its id (as printed when it was created)."""
    from .extensions import db
    from .services import open311

    if open311.revoke_key(key_id, actor=_cli_actor()) is None:
        raise click.ClickException(f"no api_key {key_id}")
    db.session.commit()
    click.echo(f"api_key {key_id} revoked")


users_group = AppGroup("users", help="Staff accounts: officers and agency admins (of one agency), dispatchers, "
                                    "admins.")


def _password(password_stdin: bool) -> str:
    """The new password: the first line of standard input, or typed twice at a prompt."""
    if password_stdin:
        return click.get_text_stream("stdin").readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _refused(exc: Exception) -> click.ClickException:
    """A service's refusal (ma.ValidationError, ApiError) as a command's error message."""
    import marshmallow as ma

    if isinstance(exc, ma.ValidationError) and isinstance(exc.messages, dict):
        return click.ClickException("; ".join(
            f"{field}: {' '.join(map(str, problems)) if isinstance(problems, list) else problems}"
            for field, problems in exc.messages.items()))
    return click.ClickException(str(exc))


def _user(username: str):
    from .services import accounts

    account = accounts.find(username)
    if account is None:
        raise click.ClickException(f"no account {username!r}")
    return account


_PASSWORD_STDIN = click.option("--password-stdin", is_flag=True,
                               help="Read the password from the first line of standard input instead of a prompt.")


@users_group.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(["officer", "agency_admin", "dispatcher", "admin"]),
              help="officer or agency_admin (with --agency), dispatcher, admin.")
@click.option("--agency", "agency_code", metavar="CODE",
              help="The agency's code: required for officer and agency_admin, refused for admin.")
@click.option("--display-name", help="The name people see (default: the username).")
@click.option("--email")
@_PASSWORD_STDIN
def users_create(username: str, role: str, agency_code: str | None, display_name: str | None, email: str | None,
                 password_stdin: bool) -> None:
    """Create an account. The password (at least 10 characters, not the username) is asked for twice."""
    import marshmallow as ma

    from .errors import ApiError
    from .extensions import db
    from .services import accounts

    fields = {"agency_code": agency_code, "display_name": display_name, "email": email}
    try:
        accounts.check_new(username, role, **fields)  # before asking for the password
        account = accounts.create(username, role, _password(password_stdin), actor=_cli_actor(), **fields)
        db.session.commit()
    except (ma.ValidationError, ApiError) as exc:
        raise _refused(exc) from exc
    agency = f" of {account.agency.code}" if account.agency is not None else ""
    click.echo(f"created {account.role} {account.username}{agency}")


@users_group.command("list")
@click.option("--role", type=click.Choice(["officer", "agency_admin", "dispatcher", "admin"]))
@click.option("--agency", "agency_code", metavar="CODE", help="Only this agency's accounts.")
def users_list(role: str | None, agency_code: str | None) -> None:
    """The accounts (never a password hash): username, role, agency, name, and whether disabled."""
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    from .extensions import db
    from .models import Account, Agency

    stmt = select(Account).options(joinedload(Account.agency)).order_by(Account.username)
    if role:
        stmt = stmt.where(Account.role == role)
    if agency_code:
        stmt = stmt.join(Agency, Agency.id == Account.agency_id).where(Agency.code == agency_code)
    for account in db.session.scalars(stmt):
        agency = f" of {account.agency.code}" if account.agency is not None else ""
        state = "" if account.active else " (disabled)"
        click.echo(f"{account.username}: {account.role}{agency}, {account.display_name}{state}")


@users_group.command("disable")
@click.argument("username")
def users_disable(username: str) -> None:
    """Disable an account: it can no longer log in, and its tokens are revoked (not the last admin)."""
    from .errors import ApiError
    from .extensions import db
    from .services import accounts

    account = _user(username)
    try:
        revoked = accounts.set_active(account, False, actor=_cli_actor())
    except ApiError as exc:
        raise _refused(exc) from exc
    db.session.commit()
    click.echo(f"disabled {account.username}; {revoked} token(s) revoked")


@users_group.command("enable")
@click.argument("username")
def users_enable(username: str) -> None:
    """Enable a disabled account again (its old tokens stay revoked)."""
    from .extensions import db
    from .services import accounts

    account = _user(username)
    accounts.set_active(account, True, actor=_cli_actor())
    db.session.commit()
    click.echo(f"enabled {account.username}")


@users_group.command("reset-password")
@click.argument("username")
@_PASSWORD_STDIN
def users_reset_password(username: str, password_stdin: bool) -> None:
    """Set a new password: the account's tokens are revoked and a lockout is cleared."""
    import marshmallow as ma

    from .extensions import db
    from .services import accounts

    account = _user(username)
    try:
        revoked = accounts.reset_password(account, _password(password_stdin), actor=_cli_actor())
    except ma.ValidationError as exc:
        raise _refused(exc) from exc
    db.session.commit()
    click.echo(f"password of {account.username} reset; {revoked} token(s) revoked, lockout cleared")


storage_group = AppGroup("storage", help="The photo storage (STORAGE_BACKEND: local files or an S3 bucket).")


@storage_group.command("check")
def storage_check() -> None:
    """Write, read back and delete a probe object; with S3, check that the bucket refuses anonymous reads
    (exit 1 on any problem)."""
    from .services.storage import check_storage, get_storage

    storage = get_storage()
    where = f"bucket {storage.bucket}" if hasattr(storage, "bucket") else f"{storage.root}"
    problems = check_storage(storage)
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"photo storage ok: {where} (written, read back, deleted" +
               (", private)" if hasattr(storage, "bucket") else ")"))


metrics_group = AppGroup("metrics", help="The accountability metrics (README, Methodology).")


@metrics_group.command("refresh")
@click.option("--full", is_flag=True, help="Replay every report's events, not only the new ones.")
def metrics_refresh(full: bool) -> None:
    """Bring the metrics' facts up to the events, and recompute the published answers."""
    from .services import metrics

    stats = metrics.refresh(full=full)
    if stats is None:
        raise click.ClickException("another metrics refresh is running; try again when it ends")
    answers = metrics.refresh_results()
    click.echo(f"{stats.reports} report(s) replayed in {stats.seconds:.1f} s (events through transaction "
               f"{stats.events_through}); {answers} answer(s) recomputed")


@metrics_group.command("verify")
@click.option("--group-by", "group_bys", multiple=True, type=click.Choice(("agency", "category", "ward", "month")),
              help="Check these groupings (default: every answer published now).")
@click.option("--from", "start", help="First day (YYYY-MM-DD) with --group-by.")
@click.option("--to", "end", help="Last day (YYYY-MM-DD) with --group-by.")
def metrics_verify(group_bys: tuple, start: str | None, end: str | None) -> None:
    """Recompute the published figures from the events alone and list every difference (exit 1 if any)."""
    from .errors import ApiError
    from .services import metrics, metrics_verify

    try:
        periods = [metrics.parse_period({"group_by": g, "from": start, "to": end}) for g in group_bys]
    except ApiError as exc:
        raise click.BadParameter(exc.message) from exc
    checked, differences = metrics_verify.verify(periods or None)
    for difference in differences:
        click.echo(str(difference))
    click.echo(f"{checked} answer(s) checked against the events: {len(differences)} difference(s)")
    if differences:
        raise SystemExit(1)


map_group = AppGroup("map", help="The public map's rollup: report counts per grid cell (the clusters).")


@map_group.command("refresh")
def map_refresh() -> None:
    """Recompute the map's rollup from the reports (the scheduler does it every METRICS_REFRESH_SECONDS)."""
    from .services import mapgrid

    stats = mapgrid.refresh()
    if stats is None:
        raise click.ClickException("another map refresh is running; try again when it ends")
    click.echo(f"{stats.cells} cell row(s) counted in {stats.seconds:.1f} s, as of {stats.as_of.isoformat()}")


# -- administration: agencies, categories, routing rules, areas, the audit log ---------------------------
#
# Each command calls the service the admin API calls (one code path, the same checks and the same audit
# entry, by `cli:<system user>`); a refusal is the command's error message and exit status 1.

def _service(call):
    """Run a service call; its refusal (a validation error, an ApiError) becomes the command's error."""
    import marshmallow as ma

    from .errors import ApiError

    try:
        return call()
    except (ma.ValidationError, ApiError) as exc:
        raise _refused(exc) from exc


def _given(**options) -> dict:
    """The options given on the command line (None: not given; "": cleared, as JSON null)."""
    return {name: (None if value == "" else value) for name, value in options.items() if value is not None}


def _show_agency(agency, secret: str | None = None) -> None:
    state = "active" if agency.active else "INACTIVE"
    webhook = agency.webhook_url or "no webhook"
    click.echo(f"{agency.code}: {agency.name} / {agency.name_en} ({agency.kind}, {state}; {webhook})")
    if secret:
        click.echo("webhook secret (shown once; it signs X-Hue-Signature):")
        click.echo(secret)


agencies_group = AppGroup("agencies", help="The agencies that handle reports (admin; every change is audited).")
_AGENCY_OPTIONS = (
    click.option("--name", help="Vietnamese name."),
    click.option("--name-en", help="English name."),
    click.option("--kind", type=click.Choice(["department", "company", "service", "ward_committee", "police",
                                              "dispatcher", "other"])),
    click.option("--area", help="Code of the current ward it serves (\"\" for none)."),
    click.option("--email", "contact_email", help="Contact e-mail (\"\" to clear)."),
    click.option("--phone", "contact_phone", help="Contact phone (\"\" to clear)."),
    click.option("--webhook-url", help="Where its messages are POSTed (\"\" removes the webhook and its secret)."),
)


def _agency_options(command):
    for option in reversed(_AGENCY_OPTIONS):
        command = option(command)
    return command


@agencies_group.command("list")
def agencies_list() -> None:
    """Every agency, active or not."""
    from .services import agencies

    for agency in agencies.listing():
        _show_agency(agency)


@agencies_group.command("create")
@click.argument("code")
@_agency_options
def agencies_create(code: str, **options) -> None:
    """Create the agency CODE (--name, --name-en and --kind are required). With --webhook-url, its webhook
    secret is printed, once."""
    from .services import agencies

    agency, secret = _service(lambda: agencies.create({"code": code, **_given(**options)}, _cli_actor()))
    _show_agency(agency, secret)


@agencies_group.command("update")
@click.argument("code")
@_agency_options
def agencies_update(code: str, **options) -> None:
    """Change (rename, re-contact, set the webhook of) the agency CODE. A first webhook URL prints its secret."""
    from .services import agencies

    fields = _given(**options)
    if not fields:
        raise click.UsageError("nothing to change: give at least one option")
    agency, secret = _service(lambda: agencies.update(code, fields, _cli_actor()))
    _show_agency(agency, secret)


@agencies_group.command("rotate-secret")
@click.argument("code")
def agencies_rotate_secret(code: str) -> None:
    """A new webhook secret for CODE, printed once; the old one no longer signs anything."""
    from .services import agencies

    agency, secret = _service(lambda: agencies.rotate_secret(code, _cli_actor()))
    _show_agency(agency, secret)


@agencies_group.command("deactivate")
@click.argument("code")
def agencies_deactivate(code: str) -> None:
    """Deactivate CODE: refused while it holds open reports (listed: transfer them first, e.g. with
    `flask rules reroute`) or active rules send reports to it."""
    from .services import agencies

    _show_agency(_service(lambda: agencies.set_active(code, False, _cli_actor())))


@agencies_group.command("activate")
@click.argument("code")
def agencies_activate(code: str) -> None:
    """Activate CODE again."""
    from .services import agencies

    _show_agency(_service(lambda: agencies.set_active(code, True, _cli_actor())))


categories_group = AppGroup("categories", help="What residents can report (Open311 services) and their groups "
                                                "(admin; every change is audited).")
_CATEGORY_OPTIONS = (
    click.option("--group", help="The group's code."),
    click.option("--name", help="Vietnamese name."),
    click.option("--name-en", help="English name."),
    click.option("--description", help="Vietnamese description."),
    click.option("--description-en", help="English description."),
    click.option("--sla-hours", help="Deadline in working hours (more than 0; counts for new reports)."),
    click.option("--urgent/--not-urgent", default=None),
    click.option("--keyword", "keywords", multiple=True, help="A search keyword (repeatable; replaces them)."),
    click.option("--attributes", "attributes_file", type=click.File(encoding="utf-8"),
                 help="A JSON file: the list of Open311 attributes (extra inputs) of the service definition."),
    click.option("--active/--inactive", default=None, help="Offered to residents or not."),
    click.option("--sort-order", type=int),
)


def _category_options(command):
    for option in reversed(_CATEGORY_OPTIONS):
        command = option(command)
    return command


def _category_fields(options: dict) -> dict:
    import json

    keywords, attributes_file = options.pop("keywords"), options.pop("attributes_file")
    fields = _given(**options)
    if keywords:
        fields["keywords"] = list(keywords)
    if attributes_file is not None:
        try:
            fields["attributes"] = json.load(attributes_file)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--attributes") from None
    return fields


def _show_category(category) -> None:
    state = "" if category.active else ", INACTIVE"
    click.echo(f"{category.code} [{category.group.code}]: {category.name} / {category.name_en} "
               f"(SLA {category.sla_hours} working h{', urgent' if category.urgent else ''}{state}"
               f"{f', {len(category.attributes)} attribute(s)' if category.attributes else ''})")


@categories_group.command("list")
def categories_list() -> None:
    """Every category, active or not, by group."""
    from .services import catalog

    for category in catalog.all_categories():
        _show_category(category)


@categories_group.command("create")
@click.argument("code")
@_category_options
def categories_create(code: str, **options) -> None:
    """Create the category CODE (--group, --name, --name-en and --sla-hours are required)."""
    from .services import catalog

    fields = {"code": code, **_category_fields(options)}
    _show_category(_service(lambda: catalog.create_category(fields, _cli_actor())))


@categories_group.command("update")
@click.argument("code")
@_category_options
def categories_update(code: str, **options) -> None:
    """Change the category CODE: names, group, SLA (for new reports), attributes, active."""
    from .services import catalog

    fields = _category_fields(options)
    if not fields:
        raise click.UsageError("nothing to change: give at least one option")
    _show_category(_service(lambda: catalog.update_category(code, fields, _cli_actor())))


@categories_group.command("groups")
def categories_groups() -> None:
    """The groups of categories."""
    from .services import catalog

    for group in catalog.all_groups():
        click.echo(f"{group.code}: {group.name} / {group.name_en} (order {group.sort_order})")


@categories_group.command("group-create")
@click.argument("code")
@click.option("--name", required=True, help="Vietnamese name.")
@click.option("--name-en", required=True, help="English name.")
@click.option("--sort-order", type=int)
def categories_group_create(code: str, **options) -> None:
    """Create the group CODE."""
    from .services import catalog

    group = _service(lambda: catalog.create_group({"code": code, **_given(**options)}, _cli_actor()))
    click.echo(f"{group.code}: {group.name} / {group.name_en}")


@categories_group.command("group-update")
@click.argument("code")
@click.option("--name", help="Vietnamese name.")
@click.option("--name-en", help="English name.")
@click.option("--sort-order", type=int)
def categories_group_update(code: str, **options) -> None:
    """Rename or reorder the group CODE."""
    from .services import catalog

    group = _service(lambda: catalog.update_group(code, _given(**options), _cli_actor()))
    click.echo(f"{group.code}: {group.name} / {group.name_en}")


rules_group = AppGroup("rules", help="Routing rules (category x area -> agency) and re-routing open reports "
                                      "(admin; every change is audited).")


def _show_rule(rule) -> None:
    state = "" if rule.active else " INACTIVE"
    retired = f" (retired {rule.area.valid_to})" if rule.area.valid_to else ""
    click.echo(f"{rule.id}: {rule.category.code} in {rule.area.code} {rule.area.name}{retired} -> "
               f"{rule.agency.code} (priority {rule.priority}){state}")


@rules_group.command("list")
@click.option("--category", help="A category code.")
@click.option("--area", help="An area code.")
@click.option("--agency", help="An agency code.")
@click.option("--all-vintages", is_flag=True, help="Also the rules on areas of retired boundary vintages.")
def rules_list(category: str | None, area: str | None, agency: str | None, all_vintages: bool) -> None:
    """The routing rules, by category, area and priority."""
    from .services import routing_rules

    args = {"category": category, "area": area, "agency": agency, "vintage": "all" if all_vintages else "current"}
    for rule in _service(lambda: routing_rules.listing(args)):
        _show_rule(rule)


@rules_group.command("create")
@click.argument("category")
@click.argument("area")
@click.argument("agency")
@click.option("--priority", type=int, help="Lower first among rules on the same area (default 100).")
@click.option("--inactive", is_flag=True, help="Create it inactive.")
def rules_create(category: str, area: str, agency: str, priority: int | None, inactive: bool) -> None:
    """Route CATEGORY in AREA (a current ward's code, or the city's) to AGENCY, for reports from now on."""
    from .services import routing_rules

    fields = {"category": category, "area": area, "agency": agency, **_given(priority=priority)}
    if inactive:
        fields["active"] = False
    _show_rule(_service(lambda: routing_rules.create(fields, _cli_actor())))


@rules_group.command("update")
@click.argument("rule_id", type=int)
@click.option("--agency", help="Send to this agency instead.")
@click.option("--priority", type=int)
@click.option("--active/--inactive", default=None)
def rules_update(rule_id: int, **options) -> None:
    """Retarget, reprioritise, activate or deactivate the rule RULE_ID (for reports from now on)."""
    from .services import routing_rules

    fields = _given(**options)
    if not fields:
        raise click.UsageError("nothing to change: give at least one option")
    _show_rule(_service(lambda: routing_rules.update(rule_id, fields, _cli_actor())))


@rules_group.command("reroute")
@click.option("--ward", help="A ward code (its reports of every boundary vintage).")
@click.option("--category", help="A category code.")
@click.option("--reason", help="Added to the transfers' reason.")
@click.option("--dry-run", is_flag=True, help="Say what would move; move nothing.")
def rules_reroute(ward: str | None, category: str | None, reason: str | None, dry_run: bool) -> None:
    """Move the open reports of a ward and/or category to the agency the rules give now, as transfers
    (events, webhooks, metrics) by the admin."""
    from .services import routing_rules, workflow

    fields = {**_given(ward=ward, category=category, reason=reason), "dry_run": dry_run}
    result = _service(lambda: routing_rules.reroute(fields, _cli_actor(), workflow.CommandAdmin()))
    for move in result.moved:
        click.echo(f"{move.code} ({move.status}): {move.from_agency or '-'} -> {move.to_agency}")
    verb = "would move" if dry_run else "moved"
    click.echo(f"{verb} {len(result.moved)} report(s); {result.unchanged} already where the rules send them")


areas_group = AppGroup("areas", help="The city's administrative areas and their boundary vintages (admin; every "
                                      "change is audited).")


@areas_group.command("list")
@click.option("--all-vintages", is_flag=True, help="Also the areas of retired vintages.")
def areas_list(all_vintages: bool) -> None:
    """The areas of the current boundary vintage (the city first)."""
    from .services import areas

    for area in areas.listing(all_vintages):
        until = f" until {area.valid_to}" if area.valid_to else ""
        click.echo(f"{area.code}: {area.name} / {area.name_en} ({area.level}, tier {area.tier}, from "
                   f"{area.valid_from}{until})")


@areas_group.command("load")
@click.argument("geojson", type=click.File(encoding="utf-8"))
@click.option("--valid-from", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="The first day of the new boundaries (after the current vintage's).")
@click.option("--level", "levels", type=(str, int, str), multiple=True, metavar="LEVEL TIER EN",
              help="A level of the file's `level` property, its tier (2 under the city) and English word "
                   "(repeatable; default: the current wards' levels).")
@click.option("--fill-holes-below-km2", type=float, help="Fill the city outline's holes smaller than this "
                                                           "(default: as the current outline).")
@click.option("--force", is_flag=True, help="Load a set covering less than 99% of the current city outline "
                                            "(the city becomes its union).")
@click.option("--dry-run", is_flag=True, help="Check it and say what would change; write nothing.")
def areas_load(geojson, valid_from, levels: tuple, fill_holes_below_km2: float | None, force: bool,
               dry_run: bool) -> None:
    """Load GEOJSON (a FeatureCollection of the new wards, WGS84) as the current boundary vintage. Existing
    reports keep their ward; new reports are placed in the new ones; rules and agencies of a ward whose
    code continues follow it. Refused: a set covering less than 99% of the current city outline (unless
    --force), a date more than a year ahead."""
    import json

    from .services import areas

    try:
        doc = json.load(geojson)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="GEOJSON") from None
    fields = {"geojson": doc, "valid_from": valid_from.date().isoformat(), "force": force, "dry_run": dry_run,
              **_given(outline_fill_holes_below_km2=fill_holes_below_km2)}
    if levels:
        fields["levels"] = {name: {"tier": tier, "en": en} for name, tier, en in levels}
    summary = _service(lambda: areas.load_new_vintage(fields, _cli_actor()))
    coverage = "" if summary["coverage"] is None else f"; {summary['coverage']:.2%} of the current city covered"
    click.echo(f"{'dry run, nothing written: would load' if dry_run else 'loaded'} {len(summary['wards'])} area(s) "
               f"valid from {summary['valid_from']}; retired {len(summary['retired'])}; {summary['rules_carried']} "
               f"routing rule(s) carried over{coverage}")
    for name in ("new_codes", "ended_codes", "agencies_moved", "wards_without_rules"):
        if summary[name]:
            click.echo(f"{name.replace('_', ' ')}: {', '.join(summary[name])}")


audit_group = AppGroup("audit", help="The audit log of admin changes.")


@audit_group.command("list")
@click.option("--action", help="An action (agency.create), or a prefix ending in a dot (agency.).")
@click.option("--object-type", help="agency, category, category_group, routing_rule, area_vintage, reports, "
                                    "open311_key, account, calendar, city.")
@click.option("--object", "object_key", help="The object's key: a code, username or id.")
@click.option("--actor", help="A username, or cli:<system user>.")
@click.option("--from", "start", help="From this date (YYYY-MM-DD) or date-time.")
@click.option("--to", "end", help="To this date (included) or date-time.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def audit_list(action, object_type, object_key, actor, start, end, limit: int) -> None:
    """The newest entries first, one per line: id, time, actor, action, object, then before/after as JSON."""
    import json

    from .services import audit

    args = {"action": action, "object_type": object_type, "object": object_key, "actor": actor, "from": start,
            "to": end}
    page, _ = _service(lambda: audit.entries(args, limit))
    for entry in page:
        click.echo(f"{entry.id} {entry.created_at.isoformat(timespec='seconds')} {entry.actor} {entry.action} "
                   f"{entry.object_type}:{entry.object_key} before={json.dumps(entry.before, ensure_ascii=False)} "
                   f"after={json.dumps(entry.after, ensure_ascii=False)}")


privacy_group = AppGroup("privacy", help="Personal data retention (PERSONAL_DATA_RETENTION_MONTHS).")


@privacy_group.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be erased; change nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many reports (default: all that are due).")
def privacy_purge(dry_run: bool, limit: int | None) -> None:
    """Erase the personal data of the reports closed more than PERSONAL_DATA_RETENTION_MONTHS ago: the
    reporter's contact, tracking token, push address, feedback comment, the originals of the photos (their
    derivatives stay). The scheduler does it every 10 minutes; this runs it now, to the end. Exit 1 if a
    report could not be erased (it is left whole; run again)."""
    from .extensions import db
    from .services import audit, privacy

    result = privacy.purge(dry_run=dry_run, limit=limit)
    counts = result.as_dict()
    if not dry_run and result.reports:
        audit.record(_cli_actor(), "privacy.purge", "reports", "retention", None,
                     {**counts, "retention_months": privacy.retention_months()})
        db.session.commit()
    click.echo(f"{'dry run, nothing changed: would erase' if dry_run else 'erased'} the personal data of "
               f"{result.reports} report(s) closed more than {privacy.retention_months()} month(s) ago: "
               f"{result.contacts} contact(s), {result.photos} photo original(s) let go, "
               f"{len(result.originals)} stored original(s) deleted"
               + (" (more are due: --limit reached)" if result.more else ""))
    if result.failed:
        raise click.ClickException(f"{len(result.failed)} report(s) could not be erased (left whole; see the log), "
                                   f"ids {', '.join(map(str, result.failed[:20]))}")


def init_app(app: Flask) -> None:
    for command in (seed_command, calendar_group, worker_command, scheduler_command, healthcheck_command, tokens_group):
        app.cli.add_command(command)
    app.cli.add_command(users_group)
    app.cli.add_command(open311_group)
    app.cli.add_command(metrics_group)
    app.cli.add_command(storage_group)
    for group in (map_group, agencies_group, categories_group, rules_group, areas_group, audit_group,
                  privacy_group):
        app.cli.add_command(group)
