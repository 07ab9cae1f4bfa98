"""What every page blueprint shares: the language, the security headers, the templates' helpers, CSRF
protection for forms, and errors as pages.

The public pages (web/__init__.py), the officer console (web/console.py) and the residents' pages
(web/resident.py) are each a blueprint set up by `setup()`: Vietnamese by default, `?lang=en` (or `vi`)
remembered in the `lang` cookie, a Content-Security-Policy without inline script or style (security.py).

CSRF: a form that POSTs carries `csrf_token`, a random value kept in Flask's signed session cookie
(HttpOnly, SameSite=Lax, Secure in production); `check_csrf()` refuses a POST without the session's value
with a 400 page. A page another site makes cannot read the value, so it cannot forge the form.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, g, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from ..errors import HTTP_ERRORS, ApiError
from ..security import policy
from ..services import areas
from .i18n import DEFAULT_LANG, LANGS, message, pick

LANG_COOKIE = "lang"
LANG_COOKIE_SECONDS = 365 * 24 * 3600
CSRF_FIELD = "csrf_token"
CSRF_SESSION_KEY = "csrf"


def _lang() -> str:
    asked = request.args.get("lang")
    if asked in LANGS:
        return asked
    remembered = request.cookies.get(LANG_COOKIE)
    return remembered if remembered in LANGS else DEFAULT_LANG


def choose_language() -> None:
    g.lang = _lang()


def no_frames(response):
    """After a view of a blueprint whose pages may not be framed: register after setup() (it runs first).
    The console's pages and the residents' private ones are framed by nobody (clickjacking a form's buttons)."""
    response.headers["Content-Security-Policy"] = policy(frame_ancestors="'none'")
    response.headers["X-Frame-Options"] = "DENY"
    return response


def page_headers(response):
    asked = request.args.get("lang")
    if asked in LANGS and request.cookies.get(LANG_COOKIE) != asked:
        response.set_cookie(LANG_COOKIE, asked, max_age=LANG_COOKIE_SECONDS, samesite="Lax",
                            secure=request.is_secure, httponly=True)
    # Scripts, styles and data from this origin only (no inline script or style, no eval); images also from
    # the tile server. The public pages may be framed by this site; the console's are stricter (no_frames).
    response.headers.setdefault("Content-Security-Policy", policy())
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.vary.add("Cookie")  # the language (and, on forms, the session)
    return response


def city_timezone() -> ZoneInfo:
    city = areas.current_city()
    try:
        return ZoneInfo(city.timezone) if city else ZoneInfo("UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def when(value) -> str:
    """An ISO date-time as the city reads it: 21/11/2026 08:05 in its time zone; "" for none."""
    if not value:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(city_timezone()).strftime("%d/%m/%Y %H:%M")


def set_canonical(endpoint: str, **values) -> None:
    """The page rendered in answer to a POST is this GET page: the language toggle leads there, and the
    script puts it in the address bar (a reload then shows the page again instead of posting again)."""
    g.canonical = (endpoint, values)


def canonical_url() -> str | None:
    canonical = g.get("canonical")
    return url_for(canonical[0], **canonical[1]) if canonical else None


def _lang_url(lang: str) -> str:
    """This page in another language (the query string kept)."""
    canonical = g.get("canonical")
    if canonical:
        return url_for(canonical[0], **canonical[1], lang=lang)
    view_args = request.view_args or {}
    args = {k: v for k, v in request.args.to_dict(flat=False).items() if k not in view_args}
    args["lang"] = [lang]
    return url_for(request.endpoint or "web.map_page", **view_args, **args)


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def new_csrf_token() -> None:
    """A fresh token (at log-in and log-out: a token known before them is worth nothing after)."""
    session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)


def check_csrf() -> None:
    """Refuse a POST whose form does not carry this session's CSRF token: 400 `csrf_failed`."""
    if request.method != "POST":
        return
    expected = session.get(CSRF_SESSION_KEY)
    sent = request.form.get(CSRF_FIELD)
    if not (isinstance(expected, str) and sent and hmac.compare_digest(sent.encode(), expected.encode())):
        raise ApiError(400, "csrf_failed",
                       "This form has expired or was not sent from this site: reload the page and try again.",
                       message_vi="Biểu mẫu đã hết hạn hoặc không được gửi từ trang này: vui lòng tải lại trang "
                                  "và thử lại.")


def page_context() -> dict:
    lang = g.get("lang", DEFAULT_LANG)
    other = "en" if lang == "vi" else "vi"
    city = areas.current_city()
    return {
        "lang": lang,
        "other_lang": other,
        "other_lang_url": _lang_url(other),
        "canonical_url": canonical_url(),
        "t": lambda key, **kw: message(key, lang).format(**kw) if kw else message(key, lang),
        "pick": lambda label: pick(label, lang),
        "when": when,
        "csrf_token": csrf_token,
        "city_name": (pick({"vi": city.name, "en": city.name_en}, lang) if city else ""),
    }


def error_text(exc: ApiError | HTTPException) -> tuple[int, str, str]:
    """(status, title, text) of an error for a page, in the reader's language."""
    lang = g.get("lang", DEFAULT_LANG)
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        _, text_en, text_vi = HTTP_ERRORS.get(status, ("error", "Error.", "Lỗi."))
        text = text_vi if lang == "vi" else text_en
    else:
        status = exc.status
        text = (exc.message_vi or exc.message) if lang == "vi" else exc.message
    title = message("not_found_title" if status == 404 else "error_title", lang)
    return status, title, text


def said_as(exc: ApiError, key: str) -> ApiError:
    """The same error in the pages' own words (i18n.py's `key`)."""
    return ApiError(exc.status, exc.code, message(key, "en"), message_vi=message(key, "vi"), headers=exc.headers)


def error_page(exc: ApiError | HTTPException, template: str = "error.html", **context):
    """An error as a page, with the error's status and headers."""
    status, title, text = error_text(exc)
    response = current_app.make_response((render_template(template, title=title, text=text, **context), status))
    headers = exc.headers if isinstance(exc, ApiError) else dict(exc.get_headers())
    for key, value in headers.items():
        if key.lower() != "content-type":
            response.headers[key] = value
    return response


def _page_path(path: str) -> str | None:
    """The error template of a page's address (the console's, the residents'), or None for the API's."""
    if path == "/console" or path.startswith("/console/"):
        return "console/error.html"
    if path == "/report" or path.startswith("/track/"):
        return "error.html"
    return None


def unrouted_error(exc: HTTPException):
    """A 404 or 405 that no view saw (an unknown address, a wrong method): a page under the pages'
    addresses, Open311's error list under its own (even where its catch-all cannot match, e.g. a path with a
    newline), the API's JSON anywhere else."""
    from ..api import open311
    from ..errors import handle_http_exception

    if request.path.startswith(open311.blp.url_prefix + "/"):
        return open311.http_error(exc)
    template = _page_path(request.path)
    if template is None:
        return handle_http_exception(exc)
    choose_language()
    return page_headers(error_page(exc, template, **page_context()))


def setup(bp: Blueprint) -> Blueprint:
    """Make `bp` a blueprint of pages: the language, the headers and the templates' helpers."""
    bp.before_request(choose_language)
    bp.after_request(page_headers)
    bp.context_processor(page_context)
    return bp


def init_app(app) -> None:
    """Flask's signed session cookie (the console's log-in, the forms' CSRF token): HttpOnly, SameSite=Lax,
    and Secure in production (behind TLS). Unknown addresses under the pages' paths answer pages."""
    app.config["SESSION_COOKIE_NAME"] = "hue_session"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = app.config.get("HUE_ENV") == "production"
    for status in (404, 405):
        app.register_error_handler(status, unrouted_error)
