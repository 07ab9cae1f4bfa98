"""A real server and a real browser for the page tests: the test app served by werkzeug on 127.0.0.1 in a
thread, and Debian's headless Chromium driven by Playwright (never a downloaded browser).

Tiles are refused at the browser (the test machine has no internet, and the map must not need them); any
other request leaving 127.0.0.1 is refused too and recorded, so a test can say the pages load nothing from
outside but the tiles.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

CHROMIUM = os.environ.get("HUE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"]


class LiveServer:
    """The app on a free port of 127.0.0.1, served by werkzeug's threaded server until stopped."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def chromium_path() -> str:
    path = shutil.which(CHROMIUM) or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's `chromium` "
                    "(or apt-get install chromium)")
    return path


class Traffic:
    """What the pages asked for outside the live server, and what went wrong in them."""

    def __init__(self, server_url: str, tile_url: str):
        self.local = urlsplit(server_url).netloc
        self.tile_host = urlsplit(tile_url.replace("{s}", "a")).hostname
        self.tiles: list[str] = []
        self.external: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []

    def route(self, route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.netloc == self.local:
            route.continue_()
            return
        if parts.hostname == self.tile_host:
            self.tiles.append(url)
        else:
            self.external.append(url)
        route.abort("internetdisconnected")

    def watch(self, page) -> None:
        page.on("console", lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))

    def csp_violations(self) -> list[str]:
        return [m for m in self.console_errors if "Content Security Policy" in m]


def run_worker(app, conn) -> None:
    """Run the queued jobs (routing, photo derivatives, ...) with a real RQ worker in this process, burst."""
    from rq import SimpleWorker

    from hue_reports.jobs import queue_names

    with app.app_context():
        SimpleWorker(queue_names(), connection=conn).work(burst=True)


def remove_reports(app) -> None:
    """Empty the report tables (the browser tests commit for real: the server runs in its own thread)."""
    from sqlalchemy import text

    from hue_reports.extensions import db

    with app.app_context():
        tables = ["reports", "photos", "report_events", "report_contacts", "idempotency_keys", "feedback",
                  "outbox", "metric_state", "metric_results", "map_cells", "map_state"]
        present = [t for t in tables if db.session.scalar(text("SELECT to_regclass(:t)"), {"t": t})]
        db.session.execute(text(f"TRUNCATE {', '.join(present)} RESTART IDENTITY CASCADE"))
        db.session.commit()
        db.session.remove()


class Visit:
    """A browser tab on the live server, with what it asked of the outside world."""

    def __init__(self, browser, live, app, artifacts, **context_args):
        self.live = live
        self.artifacts = artifacts
        self.context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, "locale": "vi-VN",
                                              **context_args})
        self.traffic = Traffic(live.url, app.config["MAP_TILE_URL"])
        self.context.route("**/*", self.traffic.route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.traffic.watch(self.page)

    def go(self, path: str):
        self.page.goto(self.live.url + path)
        return self.page

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.artifacts / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


def wait_map(page, **params) -> dict:
    """Wait until the map shows the data of a query with these parameters (None: absent); its query."""
    expected = {k: v for k, v in params.items()}
    page.wait_for_function(
        """(expected) => {
             const map = document.getElementById('map');
             if (map.dataset.state !== 'ready' || !map.dataset.query) return false;
             const q = new URLSearchParams(map.dataset.query);
             return Object.entries(expected).every(([k, v]) => q.get(k) === v);
           }""", arg=expected)
    query = page.get_attribute("#map", "data-query")
    return {"query": query, "params": {k: v[0] for k, v in parse_qs(query).items()}}


def shown(page) -> dict:
    """The report markers on screen: each point's code, and the reports grouped in on-screen clusters."""
    return page.evaluate("""() => ({
        codes: [...document.querySelectorAll('#map .hr-pin')].map(e => e.dataset.code),
        grouped: [...document.querySelectorAll('#map .marker-cluster')]
                   .reduce((n, e) => n + parseInt(e.textContent, 10), 0),
        cells: [...document.querySelectorAll('#map .hr-cell')].map(e => parseInt(e.dataset.count, 10)),
        parts: [...document.querySelectorAll('#map .hr-cell')].flatMap(e => e.dataset.parts.split(',').map(Number)),
    })""")
