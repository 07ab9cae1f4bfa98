"""The public pages: the map (/), one report (/reports/<code>) and the accountability page (/stats).

Rendered on the server (templates/) with small static scripts (static/js/) and the vendored Leaflet
(static/vendor/): no build step, no CDN, no inline script and no inline event handler, so the pages are
sent with a Content-Security-Policy of `script-src 'self'`. Data reach the scripts through data-*
attributes and the public JSON API. Never any personal data: the report page renders the same public
view as GET /api/v1/public/reports/<id>.

Vietnamese by default; `?lang=en` (or `vi`) switches and is remembered in the `lang` cookie.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for

from ..errors import ApiError
from ..models import APPROXIMATE_LOCATION_SOURCES, OPEN_STATUSES, OVERDUE_LABEL, STATUS_LABELS
from ..replica import replica_readable
from ..services import catalog, public, reports
from . import pages
from .i18n import message, pick

bp = pages.setup(Blueprint("web", __name__))

METRICS_API = "/api/v1/public/metrics"
METRICS_CSV = "/api/v1/public/metrics.csv"
# The map's statuses in the filter, in the workflow's order.
STATUS_ORDER = ("submitted", "routed", "acknowledged", "in_progress", "resolved", "closed", "rejected",
                "duplicate", "routing_failed")
# The leaderboard's columns, from the metrics API (labels come from its `fields`).
LEADERBOARD_COLUMNS = ("received", "resolved", "open", "open_overdue", "agency_median_working_hours",
                       "agency_p90_working_hours", "median_hours", "on_time_rate", "transfer_rate", "reopen_rate",
                       "satisfaction_mean")
# The monthly trend chart: a duration and a rate.
TREND_SERIES = ("median_hours", "on_time_rate")


def _labels(*keys: str) -> dict[str, str]:
    return {key: message(key, g.lang) for key in keys}


def _status_labels() -> dict[str, str]:
    return {status: pick(STATUS_LABELS[status], g.lang) for status in STATUS_ORDER}


@bp.route("/")
@replica_readable
def map_page():
    """The public map: server clusters at low zoom, points (clustered in the browser) at high zoom."""
    config = {
        "api": url_for("public.public_reports"),
        "reportUrl": url_for("web.report_page", code="CODE"),
        "tileUrl": current_app.config["MAP_TILE_URL"],
        "tileAttribution": current_app.config["MAP_TILE_ATTRIBUTION"],
        "bounds": public.city_bounds(),
        "clusterBelowZoom": public.cluster_below_zoom(),
        "pointsZoom": current_app.config["PUBLIC_POINTS_ZOOM"],
        "lang": g.lang,
        "timezone": pages.city_timezone().key,
        "statuses": _status_labels(),
        "overdue": pick(OVERDUE_LABEL, g.lang),
        "labels": _labels("loading", "shown", "shown_clusters", "truncated", "load_error", "cluster_title", "agency",
                          "no_agency", "created_at", "routed_at", "resolved_at", "details", "supporters"),
    }
    statuses = [("", message("all_statuses", g.lang)), (",".join(OPEN_STATUSES), message("open_statuses", g.lang))]
    statuses += list(_status_labels().items())
    return render_template("map.html", config=config, category_groups=category_groups(), statuses=statuses)


def category_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """The filter's categories (what GET /api/v1/services lists), by group, in display order."""
    groups: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for category in catalog.active_categories():
        group = category.group
        entry = groups.setdefault(group.code, (pick({"vi": group.name, "en": group.name_en}, g.lang), []))
        entry[1].append((category.code, pick({"vi": category.name, "en": category.name_en}, g.lang)))
    return list(groups.values())


@bp.route("/reports/<code>")
@replica_readable
def report_page(code: str):
    """One report's public page: the same public data as GET /api/v1/public/reports/<id>."""
    from ..api.public import public_report_body

    report = reports.find(code)
    if code != report.public_code:  # an id or a lower-case code: the canonical address
        lang = {"lang": request.args["lang"]} if "lang" in request.args else {}
        return redirect(url_for("web.report_page", code=report.public_code, **lang), 301)
    body = public_report_body(report)
    return render_template("report.html", report=body, mini_map=mini_map(body))


def mini_map(body: dict) -> dict | None:
    """The small map of a report's view (`location`, `location_source`, `accuracy_m`): a location known
    only from the address's ward is drawn as the circle it is, never as a pin."""
    if not body["location"]:
        return None
    approximate = body["location_source"] in APPROXIMATE_LOCATION_SOURCES and body["accuracy_m"] is not None
    return {"lat": body["location"]["lat"], "lon": body["location"]["lon"],
            "approximate": approximate, "accuracy_m": body["accuracy_m"] if approximate else None,
            "tileUrl": current_app.config["MAP_TILE_URL"],
            "tileAttribution": current_app.config["MAP_TILE_ATTRIBUTION"]}


@bp.route("/stats")
@replica_readable
def stats_page():
    """The accountability page: the agencies' leaderboard and the monthly trend, from the metrics API."""
    config = {
        "api": METRICS_API,
        "csv": METRICS_CSV,
        "lang": g.lang,
        "timezone": pages.city_timezone().key,
        "columns": list(LEADERBOARD_COLUMNS),
        "trend": list(TREND_SERIES),
        "labels": _labels("agency", "whole_city", "as_of", "stats_error", "no_data", "dash"),
    }
    return render_template("stats.html", config=config)


@bp.errorhandler(ApiError)
def page_error(exc: ApiError):
    """Errors on a page are pages (the API's own errors stay JSON); an unknown report says so."""
    return pages.error_page(pages.said_as(exc, "report_not_found") if exc.status == 404 else exc)


def init_app(app: Flask) -> None:
    from . import console, resident

    pages.init_app(app)
    app.register_blueprint(bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(resident.bp)
