"""Delivering the outbox: signed webhook messages to agencies, retried with backoff for a day.

A message is written in the same transaction as the change it tells of
(services/routing.py, the overdue sweep), so no change is ever told without
having happened, nor happens without being told. Delivery is at least once:
a receiver that answered 2xx and whose answer was lost gets the message again,
with the same `X-Hue-Delivery` id to recognise it.

Signature (for agencies to verify; see `verify_signature`):

    X-Hue-Timestamp: 1763712000                      (Unix seconds when sent)
    X-Hue-Signature: t=1763712000,v1=<hex>           hex = HMAC-SHA256(secret, "<t>." + raw body)

The receiver recomputes the HMAC over the raw body bytes with the agency's
webhook secret, compares in constant time, and refuses a timestamp more than
five minutes off (a replay).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import current_app, url_for
from sqlalchemy import select, text
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Agency, OutboxMessage, Report, ReportEvent
from ..schemas.report import EventSchema, ReportSchema
from . import committing

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hue-Signature"
TIMESTAMP_HEADER = "X-Hue-Timestamp"
DELIVERY_HEADER = "X-Hue-Delivery"
EVENT_HEADER = "X-Hue-Event"
SIGNATURE_TOLERANCE_S = 300
# Backoff: 30 s, 1 min, 2 min ... doubling up to an hour between attempts, with +-20% jitter so that
# many messages failing together do not retry together.
BACKOFF_FIRST_S, BACKOFF_MAX_S = 30, 3600
ERROR_MAX_CHARS = 500


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, now: float | None = None,
                     tolerance_s: int = SIGNATURE_TOLERANCE_S) -> bool:
    """What a receiver does: True if `header` signs `body` with `secret`, recently."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def backoff_s(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt."""
    base = min(BACKOFF_FIRST_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S)
    return base * random.uniform(0.8, 1.2)


@dataclass
class Result:
    message_id: int
    outcome: str  # delivered | retry | gave_up | skipped
    status: int | None = None
    error: str | None = None


CLAIM_SQL = text("""
SELECT id FROM outbox WHERE id = :id AND delivered_at IS NULL AND gave_up_at IS NULL
FOR UPDATE SKIP LOCKED
""")


def deliver(message_id: int, *, force: bool = False) -> Result:
    """Try to deliver one message now (unless it is not due yet and not `force`d). Commits.

    The row stays locked during the attempt (SKIP LOCKED elsewhere), so two workers never send
    one message at the same time."""
    session = db.session
    try:
        if session.execute(CLAIM_SQL, {"id": message_id}).first() is None:
            session.rollback()
            return Result(message_id, "skipped")
        message = session.get(OutboxMessage, message_id)
        now = datetime.now(timezone.utc)
        if not force and message.next_attempt_at > now:
            session.rollback()
            return Result(message_id, "skipped")
        message.attempts += 1
        if message.agency_id is None:  # a reporter's push gateway (notify_url)
            status, error = _push(message)
            return _record(message, now, status, error)
        agency = session.get(Agency, message.agency_id)
        if agency is None or not agency.webhook_url:
            # The agency removed its webhook: it pulls its events instead (GET /api/v1/agency/events).
            message.gave_up_at, message.last_error = now, "no webhook configured for the agency"
            session.commit()
            return Result(message_id, "gave_up", error=message.last_error)
        if not agency.webhook_secret:  # never send an unsigned (forgeable) message; an admin can still add one
            status, error = None, "the agency's webhook has no secret to sign with"
        else:
            try:
                body = json.dumps(build_payload(message), ensure_ascii=False, separators=(",", ":")).encode()
            except Exception as exc:  # noqa: BLE001 - recorded and retried with backoff like any failure
                log.exception("outbox %s: could not build the message", message_id)
                status, error = None, f"could not build the message: {type(exc).__name__}"
            else:
                status, error = _post(agency.webhook_url, agency.webhook_secret, body, message)
        return _record(message, now, status, error)
    except BaseException:
        session.rollback()
        raise


def _record(message: OutboxMessage, now: datetime, status: int | None, error: str | None) -> Result:
    """Record an attempt's outcome and commit: delivered, retried later with backoff, or given up."""
    session = db.session
    message_id = message.id
    if error is None:
        message.delivered_at, message.last_error = now, None
        session.commit()
        return Result(message_id, "delivered", status)
    message.last_error = error[:ERROR_MAX_CHARS]
    retry_until = message.created_at + timedelta(hours=current_app.config["WEBHOOK_RETRY_HOURS"])
    next_at = now + timedelta(seconds=backoff_s(message.attempts))
    if next_at > retry_until:
        message.gave_up_at = now
        log.warning("outbox %s: gave up after %s attempts: %s", message_id, message.attempts, error)
        outcome = "gave_up"
    else:
        message.next_attempt_at = next_at
        outcome = "retry"
    session.commit()
    return Result(message_id, outcome, status, error)


def _push(message: OutboxMessage) -> tuple[int | None, str | None]:
    """A status change to the reporter's push gateway: the stored payload (the status, never contact
    details), signed with the SHA-256 of the report's tracking token (which the reporter's app can
    compute, and nobody else)."""
    if not url_allowed(message.target, current_app.config["NOTIFY_URL_PREFIXES"]):
        return None, "notify_url is no longer allowed (NOTIFY_URL_PREFIXES)"
    secret = db.session.scalar(select(Report.tracking_token_hash).where(Report.id == message.report_id))
    if not secret:
        return None, "the report has no tracking token to sign with"
    body = json.dumps({"delivery_id": message.id, **message.payload}, ensure_ascii=False,
                      separators=(",", ":")).encode()
    return _post(message.target, secret, body, message)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without the body: it is a failed delivery, not followed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post(url: str, secret: str, body: bytes, message: OutboxMessage) -> tuple[int | None, str | None]:
    """POST the body; (HTTP status, None) on a 2xx answer, else (status or None, error). Whatever the
    receiver does (refuse, redirect, answer garbage, hang up) is a failed attempt, never an exception."""
    timestamp = int(time.time())
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "hue-reports-webhook/1",
        SIGNATURE_HEADER: sign(secret, body, timestamp),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: str(message.id),
        EVENT_HEADER: message.payload.get("type", ""),
    })
    try:
        with _OPENER.open(request, timeout=current_app.config["WEBHOOK_TIMEOUT_SECONDS"]) as response:
            response.read(65536)
            if not 200 <= response.status < 300:
                return response.status, f"HTTP {response.status} (not 2xx)"
            return response.status, None
    except urllib.error.HTTPError as exc:  # 3xx (not followed), 4xx, 5xx
        location = exc.headers.get("Location") if exc.headers else None
        return exc.code, f"HTTP {exc.code} {exc.reason}" + (f" (redirect to {location}, not followed)"
                                                             if 300 <= exc.code < 400 else "")
    except Exception as exc:  # noqa: BLE001 - refused, timed out, TLS, malformed answer (http.client errors)
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}"


def build_payload(message: OutboxMessage) -> dict[str, Any]:
    """The JSON body: what happened and the report as it is now (public fields, no reporter data)."""
    payload = dict(message.payload)
    base_url = (current_app.config["PUBLIC_BASE_URL"] or "").rstrip("/")
    body: dict[str, Any] = {"delivery_id": message.id, "type": payload.get("type"),
                            "created_at": message.created_at.isoformat(), "base_url": base_url or None}
    # Links in the body are paths of this service's API (relative to base_url).
    with current_app.test_request_context("/"):
        if message.report_id is not None:
            report = db.session.scalars(select(Report).where(Report.id == message.report_id).options(
                selectinload(Report.photos), selectinload(Report.category))).one()
            body["report"] = ReportSchema().dump(report)
            body["report"]["url"] = url_for("reports.get_report", report_id=report.id)
        event_id = payload.get("event_id")
        if event_id is not None:
            event = db.session.get(ReportEvent, event_id)
            body["event"] = EventSchema().dump(event) if event else None
    for key, value in payload.items():
        body.setdefault(key, value)
    return body


def due(limit: int = 500) -> list[int]:
    """Messages whose next attempt is due, oldest first."""
    ids = db.session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.delivered_at.is_(None), OutboxMessage.gave_up_at.is_(None),
        OutboxMessage.next_attempt_at <= datetime.now(timezone.utc)).order_by(
        OutboxMessage.next_attempt_at).limit(limit)).all()
    db.session.rollback()
    return list(ids)


# The overdue sweep: one `overdue` event per report and deadline (a unique index makes it once, whatever
# runs twice; a reopened report gets a new deadline, which may pass too), and a message to the report's
# agency and to the dispatcher where they have a webhook.
OVERDUE_SQL = text("""
WITH late AS (
    SELECT r.id, r.agency_id, r.due_at, r.status, CAST(CAST(extract(epoch FROM r.due_at) AS bigint) AS text) AS due
    FROM reports r
    WHERE r.status = ANY(CAST(:statuses AS text[])) AND r.due_at < now()
      AND NOT EXISTS (SELECT 1 FROM report_events e WHERE e.report_id = r.id AND e.type = 'overdue'
                        AND e.data->>'due_epoch' = CAST(CAST(extract(epoch FROM r.due_at) AS bigint) AS text))
    ORDER BY r.due_at LIMIT :limit
), ev AS (
    INSERT INTO report_events (report_id, type, actor_kind, agency_id, public, data)
    SELECT id, 'overdue', 'system', agency_id, true,
           jsonb_build_object('due_at', due_at, 'due_epoch', due, 'status', status) FROM late
    ON CONFLICT (report_id, (data->>'due_epoch')) WHERE type = 'overdue' DO NOTHING
    RETURNING id, report_id, agency_id, data->>'due_epoch' AS due
), recipients AS (
    SELECT ev.id AS event_id, ev.report_id, ev.due, ev.agency_id AS recipient FROM ev
    UNION
    SELECT ev.id, ev.report_id, ev.due, d.id FROM ev, agencies d WHERE d.kind = 'dispatcher' AND d.active
), msgs AS (
    INSERT INTO outbox (kind, target, report_id, agency_id, payload, dedupe_key)
    SELECT 'webhook', 'agency', rc.report_id, rc.recipient,
           jsonb_build_object('type', 'report.overdue', 'event_id', rc.event_id),
           'report.overdue:' || rc.report_id || ':' || rc.due || ':' || rc.recipient
    FROM recipients rc JOIN agencies a ON a.id = rc.recipient AND a.webhook_url IS NOT NULL
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM ev) AS flagged, (SELECT coalesce(array_agg(id), '{}') FROM msgs) AS messages
""")

# Past its deadline counts only while the agency still has the work to do.
OVERDUE_STATUSES = ("routed", "acknowledged", "in_progress")


def flag_overdue(limit: int = 1000) -> tuple[int, list[int]]:
    """Flag reports past their deadline (once each). Returns (how many, outbox message ids)."""
    with committing():
        row = db.session.execute(OVERDUE_SQL, {"statuses": list(OVERDUE_STATUSES), "limit": limit}).one()
    return row.flagged, list(row.messages)


# The reporter's push messages: to the report's own notify_url and to those of its duplicates (whose
# reporters follow it), with the status only: never anyone's contact details.
NOTIFY_SQL = text("""
INSERT INTO outbox (kind, target, report_id, payload, dedupe_key)
SELECT 'webhook', c.notify_url, c.report_id,
       jsonb_build_object('type', 'report.status', 'report', mine.public_code, 'follows',
                          CASE WHEN mine.id <> r.id THEN r.public_code END,
                          'status', r.status, 'event_id', :event_id, 'at', now()),
       'status:' || :event_id || ':' || c.report_id
FROM reports r
JOIN reports mine ON mine.id = r.id OR mine.duplicate_of_id = r.id
JOIN report_contacts c ON c.report_id = mine.id AND c.notify_url IS NOT NULL AND c.erased_at IS NULL
WHERE r.id = :id
ON CONFLICT (dedupe_key) DO NOTHING
""")


def notify_status(report_id: int, event_id: int) -> None:
    db.session.execute(NOTIFY_SQL, {"id": report_id, "event_id": event_id})


def fetch_bounded(url: str, max_bytes: int, timeout_s: float):
    """GET `url` (no redirects) into a temporary file of at most `max_bytes`: (file at 0, None), or (None, the
    reason). For URLs already checked against an allow-list (url_allowed)."""
    import tempfile

    spool = tempfile.TemporaryFile()  # (a real file: the photo checks map it into memory)
    try:
        with _OPENER.open(urllib.request.Request(url, headers={"User-Agent": "hue-reports/1"}),
                          timeout=timeout_s) as response:
            if not 200 <= response.status < 300:
                raise ValueError(f"HTTP {response.status}")
            while chunk := response.read(65536):
                spool.write(chunk)
                if spool.tell() > max_bytes:
                    raise ValueError(f"larger than {max_bytes // (1024 * 1024)} MB")
    except urllib.error.HTTPError as exc:
        spool.close()
        return None, f"HTTP {exc.code} {exc.reason}" + (" (redirects are not followed)" if 300 <= exc.code < 400
                                                         else "")
    except Exception as exc:  # noqa: BLE001 - any failure is the client's media_url's
        spool.close()
        return None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    spool.seek(0)
    return spool, None


def url_allowed(url: str, prefixes: list[str] | None) -> bool:
    """Is `url` under one of the allowed push gateways? Compared as URLs, not as strings: the same scheme,
    host and port exactly, no user info, and the path under the prefix's path at a `/` boundary (so
    `https://push.vn@evil.test/`, `https://push.vn.evil.test/` or another port never pass)."""
    try:
        target = urlsplit(url)
        target_port = target.port or DEFAULT_PORTS.get(target.scheme)
    except ValueError:
        return False
    if target.username is not None or target.password is not None or not target.hostname:
        return False
    if any(ord(c) < 0x21 or ord(c) == 0x7F or c == "\\" for c in url):  # control characters, spaces, `\`
        return False
    # No dot segment and no encoded separator: a gateway normalising `/hue/../admin` must not leave the prefix.
    decoded = unquote(target.path)
    if any(seg in (".", "..") for seg in decoded.split("/")) or "\\" in decoded or decoded.count("/") != \
            target.path.count("/"):
        return False
    for prefix in prefixes or []:
        try:
            allowed = urlsplit(prefix)
            allowed_port = allowed.port or DEFAULT_PORTS.get(allowed.scheme)
        except ValueError:  # a misconfigured prefix allows nothing
            continue
        if (allowed.scheme, allowed.hostname, allowed_port) != (target.scheme, target.hostname, target_port):
            continue
        base = allowed.path if allowed.path.endswith("/") else allowed.path + "/"
        if (target.path or "/").startswith(base) or target.path == allowed.path.rstrip("/"):
            return True
    return False


DEFAULT_PORTS = {"http": 80, "https": 443}


def tell_agency(report_id: int, agency_id: int | None, event_type: str, event_id: int) -> None:
    """A webhook message to an agency about one of its reports (if it has a webhook), in the caller's
    transaction."""
    db.session.execute(text("""
        INSERT INTO outbox (kind, target, report_id, agency_id, payload, dedupe_key)
        SELECT 'webhook', 'agency', :report_id, a.id, jsonb_build_object('type', CAST(:type AS text),
               'event_id', CAST(:event_id AS bigint)), :type || ':' || :event_id || ':' || a.id
        FROM agencies a WHERE a.id = :agency_id AND a.webhook_url IS NOT NULL
        ON CONFLICT (dedupe_key) DO NOTHING
    """), {"report_id": report_id, "agency_id": agency_id, "type": event_type, "event_id": event_id})

