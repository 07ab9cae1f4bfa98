"""Extension objects, created unbound and attached to an app in create_app()."""

from __future__ import annotations

import flask_smorest
import redis
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from rq import Queue

from . import errors
from .models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()


class Api(flask_smorest.Api):
    """flask-smorest, answering its errors in our one JSON error shape."""

    def handle_http_exception(self, error):
        return errors.handle_http_exception(error)


api = Api()


def init_redis(app: Flask) -> None:
    # No socket timeout on the shared connection: RQ workers block on it for
    # minutes. Health checks use their own short-timeout client (get_redis(fast=True)).
    app.extensions["hue_redis"] = redis.Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=5)
    app.extensions["hue_redis_fast"] = redis.Redis.from_url(
        app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=2)


def get_redis(fast: bool = False) -> redis.Redis:
    """The app's Redis connection; `fast=True` for a client that fails within seconds."""
    return current_app.extensions["hue_redis_fast" if fast else "hue_redis"]


def get_queue(name: str) -> Queue:
    """An RQ queue by purpose (routing, photos, notifications, periodic)."""
    return Queue(name, connection=get_redis())
