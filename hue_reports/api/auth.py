"""Officer authentication: log in for an opaque bearer token, log out to revoke it."""

from __future__ import annotations

import marshmallow as ma
from flask import request

from ..extensions import db
from ..services import auth
from ..services.accounts import SESSION_ACCOUNT_SCHEMA, LoginSchema, SessionAccountSchema
from .accounts import json_body
from .openapi import AUTH_ERRORS, Blueprint, documented

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Officers: authentication")

LOGIN_SCHEMA = LoginSchema()


class TokenSchema(ma.Schema):
    """A new bearer token, shown this once (only its hash is stored)."""

    token = ma.fields.String(metadata={"description": "send it as `Authorization: Bearer <token>`"})
    token_type = ma.fields.String(metadata={"description": "Bearer"})
    expires_at = ma.fields.DateTime()
    account = ma.fields.Nested(SessionAccountSchema)


@blp.route("/token", methods=["POST"])
@blp.alt_response(201, schema=TokenSchema, description="Logged in: a bearer token.", success=True)
@documented(blp, LoginSchema,
            e401="`invalid_credentials`: wrong username or password, or a disabled account.",
            e422="`validation_error`: username or password missing or too long.",
            e429="`account_locked` after too many failed log-ins, or `too_many_requests` from this address "
                 "(Retry-After).")
def create_token():
    """Log in with a username and password: a bearer token valid TOKEN_HOURS."""
    data = json_body(LOGIN_SCHEMA)
    login = auth.login(data["username"], data["password"], request.remote_addr)
    body = {"token": login.token, "token_type": "Bearer", "expires_at": login.expires_at.isoformat(),
            "account": SESSION_ACCOUNT_SCHEMA.dump(login.account)}
    return body, 201, {"Cache-Control": "no-store"}


@blp.route("/token", methods=["DELETE"])
@blp.alt_response(204, description="The token is revoked.", success=True)
@documented(blp, auth=True, e401=AUTH_ERRORS["e401"], e403=None)
def revoke_token():
    """Log out: revoke the bearer token this request is made with."""
    _, token = auth.authenticate()
    auth.revoke_token(token.id)
    db.session.commit()
    return "", 204
