"""Accounts: agency admins manage their own officers; admins every agency's accounts."""

from __future__ import annotations

import marshmallow as ma
from flask import request

from ..extensions import db
from ..services import accounts, audit, auth
from ..services.accounts import ACCOUNT_SCHEMA, AccountCreateSchema, AccountListSchema, AccountSchema, PasswordSchema
from . import json_request
from .openapi import Blueprint, documented, query

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="Agency admins: officers")

MANAGERS = ("agency_admin", "admin")
NO_STORE = {"Cache-Control": "private, no-store"}


def json_body(schema: ma.Schema) -> dict:
    """The request's JSON object loaded with `schema`: 415 if it is not JSON, 400 `malformed_body` if it
    does not parse, 422 `validation_error` with `fields` if it is not a valid object."""
    return schema.load(json_request())


def _manager():
    return auth.current_account(roles=MANAGERS)


NOT_MANAGED = "`account_not_found`: no such account in the caller's agency."


@blp.route("/agency/officers")
@blp.alt_response(200, schema=AccountListSchema, description="The agency's accounts.", success=True)
@documented(blp, auth=True, parameters=[query("agency", description="admins: only this agency's accounts (an "
                                                                    "agency admin always sees its own)")],
            e403="`forbidden`: not an agency admin or admin.", e422="`validation_error`: an unknown agency.")
def list_officers():
    """The accounts of the agency admin's agency (admins: of every agency, or `?agency=CODE`)."""
    actor = _manager()
    found = accounts.agency_accounts(actor, request.args.get("agency") if actor.role == "admin" else None)
    return AccountListSchema().dump({"accounts": found, "count": len(found)}), 200, NO_STORE


@blp.route("/agency/officers", methods=["POST"])
@blp.alt_response(201, schema=AccountSchema, description="The new account.", success=True)
@documented(blp, AccountCreateSchema, auth=True,
            e403="`forbidden`: not an agency admin or admin, or a role or agency not the caller's to create.",
            e409="`username_taken`.",
            e422="`validation_error`: invalid fields (password: at least 10 characters, not the username).")
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


@blp.route("/agency/officers/<username>/disable", methods=["POST"])
@blp.alt_response(200, schema=AccountSchema, description="The account, disabled.", success=True)
@documented(blp, auth=True, e404=NOT_MANAGED)
def disable_officer(username: str):
    """Disable an officer: it can no longer log in, and its tokens are revoked."""
    return _manage(username, lambda account, by: accounts.set_active(account, False, actor=by))


@blp.route("/agency/officers/<username>/enable", methods=["POST"])
@blp.alt_response(200, schema=AccountSchema, description="The account, enabled.", success=True)
@documented(blp, auth=True, e404=NOT_MANAGED)
def enable_officer(username: str):
    """Enable a disabled officer again (its old tokens stay revoked)."""
    return _manage(username, lambda account, by: accounts.set_active(account, True, actor=by))


@blp.route("/agency/officers/<username>/reset-password", methods=["POST"])
@blp.alt_response(200, schema=AccountSchema, description="The account, with its new password.", success=True)
@documented(blp, PasswordSchema, auth=True, e404=NOT_MANAGED,
            e422="`validation_error`: the password breaks the policy.")
def reset_officer_password(username: str):
    """Set an officer's new password (`{"password": ...}`): its tokens are revoked and a lockout cleared."""
    actor = _manager()
    account = accounts.managed(actor, username)
    accounts.reset_password(account, json_body(PasswordSchema())["password"], actor=audit.Actor.of(actor))
    db.session.commit()
    return ACCOUNT_SCHEMA.dump(account), 200, NO_STORE
