"""hue-reports: an open backend for citizen field reports (phản ánh hiện trường)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = PACKAGE_DIR.parent / "migrations"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: settings from the environment, then `config` overrides."""
    from . import api, cli, errors, observability, replica, security, web
    from .config import load_config
    from .extensions import api as smorest_api
    from .extensions import db, init_redis, migrate, watch_connections

    from .uploads import UploadRequest

    app = Flask(__name__, template_folder="web/templates", static_folder="web/static")
    app.request_class = UploadRequest
    app.config.update(load_config(overrides=config))
    if app.config["PROXY_FIX_X_FOR"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_FIX_X_FOR"])  # type: ignore[method-assign]
    app.json.ensure_ascii = False  # Vietnamese stays readable in JSON
    app.json.sort_keys = False  # fields in the order the schemas give them (code before message)

    observability.init_app(app)  # (first: the request id and the timing wrap every other hook)
    security.init_app(app)  # CORS preflights; the headers of every answer
    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            watch_connections(engine)  # (the pool's liveness check)
    replica.init_app(app)  # (the replica's engine, when DATABASE_REPLICA_URL is set)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    init_redis(app)
    smorest_api.init_app(app)
    api.register(app, smorest_api)
    web.init_app(app)  # the public pages
    errors.init_app(app)
    cli.init_app(app)
    return app
