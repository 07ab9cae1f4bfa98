"""Officer authentication: opaque bearer tokens."""

from __future__ import annotations

from flask_smorest import Blueprint

from . import not_yet

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Officers: authentication")


@blp.route("/token", methods=["POST"])
def create_token():
    """Log in: a bearer token for an officer account."""
    raise not_yet("officer login")


@blp.route("/token", methods=["DELETE"])
def revoke_token():
    """Log out: revoke the bearer token."""
    raise not_yet("officer logout")
