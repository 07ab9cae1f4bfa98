"""The officer console (/console): log-in, the queue, a ticket and its workflow, in the browser.

The same services as the officer API, nothing of its own: log-in is services.auth.login (lockout and
throttling included) and the token it issues is kept in Flask's signed session cookie (HttpOnly,
SameSite=Lax, Secure in production), so that it expires, is revoked at log-out, and dies with the
account's other tokens when the account is disabled or its password reset. The queue is
services.queue.agency_queue with the API's query arguments; every action is services.workflow
(transition, comment), with the version the page was rendered with: a ticket someone else changed
meanwhile is shown again as it is now, with a message, and nothing is overwritten.

Every form carries the session's CSRF token (web/pages.py). Errors are pages: 400 for a form without
its token, 404 for a ticket the account may not handle (another agency's: as if it did not exist), 409,
412, 422 on the ticket's page with what went wrong.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import marshmallow as ma
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from ..errors import ApiError
from ..extensions import db
from ..models import OPEN_STATUSES, STATUS_LABELS, Account, AdminArea, Agency
from ..models.report import ALL_STATUSES
from ..schemas.queue import SORTS, load_query
from ..schemas.report import OfficerReportSchema
from ..services import auth, catalog, intake, queue, reports, workflow
from . import mini_map, pages
from .i18n import message, pick

bp = pages.setup(Blueprint("console", __name__, url_prefix="/console"))

SESSION_TOKEN = "console_token"
OPEN_ENDPOINTS = ("console.login",)  # reachable without logging in
UNROUTED = "submitted,routing_failed"
# The actions' forms on a ticket page, in the workflow's order; what each asks for.
ACTION_FIELDS = {"acknowledge": (), "start": (), "resolve": ("note", "photos"), "reject": ("reason",),
                 "transfer": ("agency", "reason"), "close": (), "reopen": ("reason",)}


def _not_found() -> ApiError:
    return ApiError(404, "report_not_found", "No such report.", message_vi="Không tìm thấy phản ánh.")


@bp.before_request
def require_login():
    """CSRF on every POST, then the account of the session's token (else the log-in page)."""
    pages.check_csrf()
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    token = session.get(SESSION_TOKEN)
    try:
        if not isinstance(token, str):
            raise ApiError(401, "unauthorized", "Log in first.", message_vi="Cần đăng nhập.")
        g.account, g.api_token = auth.token_account(token, roles=workflow.STAFF)
    except ApiError as exc:
        if exc.status != 401:
            raise
        session.pop(SESSION_TOKEN, None)
        if request.method == "GET":
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        flash(message("session_expired", g.lang), "error")
        return redirect(url_for("console.login"), 303)
    return None


@bp.after_request
def private(response):
    response.headers["Cache-Control"] = "private, no-store"
    return pages.no_frames(response)


def _safe_next(target: str | None) -> str:
    """Where to go after log-in: a path of the console only (never another site)."""
    if target and not any(ord(c) < 32 or c == "\x7f" for c in target):  # (a header may not hold CR/LF)
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/console") and "\\" not in target:
            return target
    return url_for("console.queue_page")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with the officer account (the API's log-in: the same lockout and throttling)."""
    if request.method == "GET":
        if isinstance(session.get(SESSION_TOKEN), str):
            return redirect(url_for("console.queue_page"))
        return render_template("console/login.html", next=request.args.get("next", ""))
    username, password = request.form.get("username", ""), request.form.get("password", "")
    next_url = request.form.get("next", "")
    if not username.strip() or not password:
        error = ApiError(422, "validation_error", "Enter the username and the password.",
                         message_vi="Nhập tên đăng nhập và mật khẩu.")
        return _login_failed(error, username, next_url)
    try:
        result = auth.login(username, password, request.remote_addr)
    except ApiError as exc:
        return _login_failed(exc, username, next_url)
    previous = session.get(SESSION_TOKEN)
    if isinstance(previous, str):  # logging in over a live session: its token must not outlive it
        try:
            auth.revoke_token(auth.token_account(previous)[1].id)
        except ApiError:
            pass  # (already expired or revoked)
        db.session.commit()
    session.clear()
    session[SESSION_TOKEN] = result.token
    pages.new_csrf_token()
    return redirect(_safe_next(next_url), 303)


def _login_failed(exc: ApiError, username: str, next_url: str):
    pages.set_canonical("console.login")
    _, _, text = pages.error_text(exc)
    page = render_template("console/login.html", error=text, username=username[:320], next=next_url)
    return page, exc.status, {k: v for k, v in exc.headers.items() if k == "Retry-After"}


@bp.route("/logout", methods=["POST"])
def logout():
    """Log out: the session's token is revoked and the session forgotten."""
    auth.revoke_token(g.api_token.id)
    db.session.commit()
    session.clear()
    pages.new_csrf_token()
    flash(message("logged_out", g.lang), "info")
    return redirect(url_for("console.login"), 303)


# --- the queue --------------------------------------------------------------------------------------

def _status_choices(account) -> list[tuple[str, str]]:
    lang = g.lang
    choices = [("", message("all_statuses", lang)), (",".join(OPEN_STATUSES), message("open_statuses", lang))]
    if account.role in queue.ALL_AGENCY_ROLES:
        choices.append((UNROUTED, message("unrouted", lang)))
    return choices + [(s, pick(STATUS_LABELS[s], lang)) for s in ALL_STATUSES]


def _wards() -> list[tuple[str, str]]:
    rows = db.session.execute(select(AdminArea.code, AdminArea.name, AdminArea.name_en).where(
        AdminArea.valid_to.is_(None), AdminArea.parent_id.is_not(None)).order_by(AdminArea.name)).all()
    return [(code, pick({"vi": name, "en": name_en}, g.lang)) for code, name, name_en in rows]


def _agencies(active_only: bool = False) -> list[Agency]:
    stmt = select(Agency).order_by(Agency.name)
    return list(db.session.scalars(stmt.where(Agency.active) if active_only else stmt))


def _categories() -> list[tuple[str, str]]:
    return [(c.code, pick({"vi": c.name, "en": c.name_en}, g.lang)) for c in catalog.all_categories()]


def _query_url(**changes) -> str:
    """The queue with the current filters, some changed (None drops one); a new filter starts at page 1."""
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    for key, value in changes.items():
        if value is None or value == "":
            args.pop(key, None)
        else:
            args[key] = value
    return url_for("console.queue_page", **args)


@bp.route("/")
def queue_page():
    """The queue: the agency's tickets by deadline (the API's filters and counts); the dispatcher sees every
    agency's and the unrouted ones."""
    account = g.account
    errors, page, status = {}, None, 200
    try:
        args = load_query(request.args)
        page = queue.agency_queue(account, args)
    except ma.ValidationError as exc:
        errors, status = (exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}), 422
    except ApiError as exc:
        if exc.status not in (403, 422):
            raise
        errors, status = exc.fields or {"_schema": [pages.error_text(exc)[2]]}, exc.status
    sees_all = account.role in queue.ALL_AGENCY_ROLES
    context = {
        "page": page, "errors": errors, "statuses": _status_choices(account), "sorts": SORTS,
        "categories": _categories(), "wards": _wards(), "agencies": _agencies() if sees_all else [],
        "sees_all": sees_all, "args": request.args, "query_url": _query_url, "status_labels": STATUS_LABELS,
        "all_statuses": ALL_STATUSES,
    }
    return render_template("console/queue.html", **context), status


# --- a ticket ---------------------------------------------------------------------------------------

def _ticket(ref: str):
    report = reports.find(ref)
    if not workflow.may_handle(g.account, report):
        raise _not_found()
    return report


def _actors(events: list[dict]) -> dict[int, str]:
    ids = {e["actor_account"] for e in events if e.get("actor_account")}
    if not ids:
        return {}
    return dict(db.session.execute(select(Account.id, Account.display_name).where(Account.id.in_(ids))).tuples().all())


def render_ticket(ref: str, status: int = 200, error: str | None = None, failed: dict | None = None):
    """A ticket's page as it is now, for this account: photos, map, timeline, comments, and a form for each
    action the workflow allows this account now, carrying the version shown. `error` and `failed` (the
    action and the text the officer typed) after a refused action."""
    report = _ticket(ref)
    pages.set_canonical("console.ticket", ref=report.public_code)
    body = OfficerReportSchema(context_account=g.account).dump(report)
    agency_choices = [a for a in _agencies(active_only=True) if a.id != report.agency_id] \
        if "transfer" in body["allowed_actions"] else []
    context = {
        "report": body,
        "evidence": [p for p in body["photos"] if p["kind"] == "evidence"],
        "resolution": [p for p in body["photos"] if p["kind"] == "resolution"],
        "actors": _actors(body["events"]),
        "mini_map": mini_map(body),
        "actions": [a for a in ACTION_FIELDS if a in body["allowed_actions"]],
        "action_fields": ACTION_FIELDS,
        "agency_choices": agency_choices,
        "max_photos": current_app.config["MAX_PHOTOS"],
        "error": error,
        "failed": failed or {},
    }
    return render_template("console/ticket.html", **context), status


@bp.route("/reports/<ref>")
def ticket(ref: str):
    """One ticket, for the staff who may handle it (another agency's is 404)."""
    return render_ticket(ref)


def _refused(ref: str, exc: ApiError, failed: dict):
    """A refused action: the ticket again, as it is now, with the reason; what the officer typed is kept
    in the form (never sent again by itself)."""
    if exc.status in (401, 403, 404):
        raise exc
    _, _, text = pages.error_text(exc)
    if exc.code == "version_mismatch":
        text = message("stale_version", g.lang)
    return render_ticket(ref, status=exc.status, error=text, failed=failed)


@bp.route("/reports/<ref>/transition", methods=["POST"])
def transition(ref: str):
    """An action of the workflow with the version the page showed (services.workflow.transition)."""
    report = _ticket(ref)
    fields = {k: v for k, v in request.form.items() if k != pages.CSRF_FIELD}
    action = fields.get("action", "")
    uploads = [intake.Upload(stream=f.stream, field="photos") for f in request.files.getlist("photos") if f.filename]
    try:
        version = workflow.parse_version(None, fields.get("version"))
        workflow.transition(report.id, g.account, action, version, fields, uploads)
    except ApiError as exc:
        return _refused(report.public_code, exc, {"action": action, **fields})
    db.session.expire_all()
    label = message(f"action_done_{action}", g.lang)
    flash(label, "success")
    if not workflow.may_handle(g.account, reports.find(str(report.id))):  # transferred away
        return redirect(url_for("console.queue_page"), 303)
    return redirect(url_for("console.ticket", ref=report.public_code), 303)


@bp.route("/reports/<ref>/comment", methods=["POST"])
def comment(ref: str):
    """A comment on the ticket: internal (officers only) unless `public` is ticked."""
    report = _ticket(ref)
    text = request.form.get("text", "")
    public = request.form.get("public") in ("on", "true", "1")
    try:
        workflow.comment(report.id, g.account, {"text": text, "public": public})
    except ApiError as exc:
        return _refused(report.public_code, exc, {"action": "comment", "text": text})
    flash(message("comment_added", g.lang), "success")
    return redirect(url_for("console.ticket", ref=report.public_code) + "#comments", 303)


@bp.route("/photos/<int:photo_id>/original")
def original_photo(photo_id: int):
    """A photo's original, with its metadata: for the staff who may handle its report (as the API's)."""
    from ..api.photos import send_original

    return send_original(photo_id, g.account)


@bp.errorhandler(ApiError)
def console_error(exc: ApiError):
    if exc.status == 404:
        exc = pages.said_as(exc, "ticket_not_found")
    return pages.error_page(exc, "console/error.html")


@bp.errorhandler(HTTPException)
def console_http_error(exc: HTTPException):
    return pages.error_page(exc, "console/error.html")
