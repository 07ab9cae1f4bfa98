"""Accounts: agency admins manage their own officers."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="Agency admins: officers")
