"""Accounts: agency admins manage their own officers; admins every agency's accounts."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from flask_smorest import Blueprint

from ..extensions import db
from ..schemas.common import ErrorSchema
from ..services import accounts, audit, auth
from ..services.accounts import ACCOUNT_SCHEMA, AccountCreateSchema, AccountListSchema, AccountSchema, PasswordSchema
from . import json_request

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="Agency admins: officers")

MANAGERS = ("agency_admin", "admin")
NO_STORE = {"Cache-Control": "private, no-store"}


def json_request_body(schema: type[ma.Schema]) -> dict[str, Any]:
    """An OpenAPI requestBody of JSON described by `schema`."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def json_body(schema: ma.Schema) -> dict:
    """The request's JSON object loaded with `schema`: 415 if it is not JSON, 400 `malformed_body` if it
    does not parse, 422 `validation_error` with `fields` if it is not a valid object."""
    return schema.load(json_request())


def _manager():
    return auth.current_account(roles=MANAGERS)


@blp.route("/agency/officers")
@blp.doc(security=[{"bearer": []}], parameters=[
    {"in": "query", "name": "agency", "schema": {"type": "string"},
     "description": "admins: only this agency's accounts (an agency admin always sees its own)"}])
@blp.alt_response(200, schema=AccountListSchema, description="The agency's accounts.", success=True)
@blp.alt_response(403, schema=ErrorSchema, description="Not an agency admin or admin.")
def list_officers():
    """The accounts of the agency admin's agency (admins: of every agency, or `?agency=CODE`)."""
    actor = _manager()
    found = accounts.agency_accounts(actor, request.args.get("agency") if actor.role == "admin" else None)
    return AccountListSchema().dump({"accounts": found, "count": len(found)}), 200, NO_STORE


@blp.route("/agency/officers", methods=["POST"])
@blp.doc(security=[{"bearer": []}], requestBody=json_request_body(AccountCreateSchema))
@blp.alt_response(201, schema=AccountSchema, description="The new account.", success=True)
@blp.alt_response(403, schema=ErrorSchema, description="This role or agency is not the caller's to create.")
@blp.alt_response(409, schema=ErrorSchema, description="`username_taken`.")
@blp.alt_response(422, schema=ErrorSchema, description="Invalid fields (password: at least 10 characters, not "
                                                       "the username).")
def create_officer():
    """Create an officer of the agency admin's agency (admins: `agency` and `role` officer or agency_admin)."""
    actor = _manager()
    account = accounts.create_for(actor, json_body(AccountCreateSchema()))
    db.session.commit()
    return ACCOUNT_SCHEMA.dump(account), 201, NO_STORE


def _manage(username: str, change) -> tuple:
    actor = _manager()
    account = accounts.managed(actor, username)
    change(account, audit.Actor.of(actor))
    db.session.commit()
    return ACCOUNT_SCHEMA.dump(account), 200, NO_STORE


_MANAGE_DOC = {"security": [{"bearer": []}]}


@blp.route("/agency/officers/<username>/disable", methods=["POST"])
@blp.doc(**_MANAGE_DOC)
@blp.alt_response(200, schema=AccountSchema, description="The account, disabled.", success=True)
@blp.alt_response(404, schema=ErrorSchema, description="No such account in the caller's agency.")
def disable_officer(username: str):
    """Disable an officer: it can no longer log in, and its tokens are revoked."""
    return _manage(username, lambda account, by: accounts.set_active(account, False, actor=by))


@blp.route("/agency/officers/<username>/enable", methods=["POST"])
@blp.doc(**_MANAGE_DOC)
@blp.alt_response(200, schema=AccountSchema, description="The account, enabled.", success=True)
@blp.alt_response(404, schema=ErrorSchema, description="No such account in the caller's agency.")
def enable_officer(username: str):
    """Enable a disabled officer again (its old tokens stay revoked)."""
    return _manage(username, lambda account, by: accounts.set_active(account, True, actor=by))


@blp.route("/agency/officers/<username>/reset-password", methods=["POST"])
@blp.doc(requestBody=json_request_body(PasswordSchema), **_MANAGE_DOC)
@blp.alt_response(200, schema=AccountSchema, description="The account, with its new password.", success=True)
@blp.alt_response(404, schema=ErrorSchema, description="No such account in the caller's agency.")
@blp.alt_response(422, schema=ErrorSchema, description="The password breaks the policy.")
def reset_officer_password(username: str):
    """Set an officer's new password (`{"password": ...}`): its tokens are revoked and a lockout cleared."""
    actor = _manager()
    account = accounts.managed(actor, username)
    accounts.reset_password(account, json_body(PasswordSchema())["password"], actor=audit.Actor.of(actor))
    db.session.commit()
    return ACCOUNT_SCHEMA.dump(account), 200, NO_STORE
