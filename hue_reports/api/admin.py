"""The admin API (/api/v1/admin/...): agencies, categories, routing rules, boundary vintages, re-routing,
Open311 api_keys, accounts, and the audit log. Admins only (bearer token of an `admin` account).

Thin: parse, call the service a `flask` command calls too, serialise. Each change commits in the service,
with its audit entry. Secrets appear in one answer only: the one that made them.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..errors import ApiError
from ..extensions import db
from ..models import ROLES, Account, Agency, Open311Key
from ..schemas.admin import (AgencyCreateSchema, AgencySchema, AgencySecretSchema, AgencyUpdateSchema, AreaSchema,
                             AuditPageSchema, CategoryCreateSchema, CategorySchema, CategoryUpdateSchema,
                             GroupCreateSchema, GroupSchema, GroupUpdateSchema, KeyCreateSchema, KeySchema,
                             NewKeySchema, RerouteSchema, RuleCreateSchema, RuleSchema, RuleUpdateSchema,
                             VintageLoadSchema)
from ..services import accounts, agencies, areas, audit, auth, catalog, open311, routing_rules
from ..services.accounts import ACCOUNT_SCHEMA, AccountCreateSchema, AccountListSchema, AccountSchema, PasswordSchema
from . import JSON_MAX_BYTES, int_arg, json_request
from .openapi import Blueprint, documented, query

blp = Blueprint("admin", __name__, url_prefix="/api/v1/admin", description="Admins: the city's set-up")

NO_STORE = {"Cache-Control": "private, no-store"}
VINTAGE_MAX_BYTES = 20 * 1024 * 1024  # a ward file of a few hundred simplified wards, with room to spare
ADMIN_403 = "`forbidden`: not an admin."


def _admin() -> Account:
    return auth.current_account(roles=("admin",))


def _body(max_bytes: int = JSON_MAX_BYTES) -> dict[str, Any]:
    """The JSON object sent (415 if not JSON, 400 if it does not parse, 413 over `max_bytes`)."""
    return json_request(max_bytes)


def _answer(schema: ma.Schema, obj: Any, status: int = 200):
    return schema.dump(obj), status, NO_STORE


def _list(name: str, schema: type[ma.Schema]) -> dict:
    """OpenAPI: {name: [schema, ...]}."""
    return {"type": "object", "required": [name], "properties": {name: {"type": "array", "items": schema}}}


OBJECT = {"type": "object"}


def _doc(schema: type[ma.Schema] | None = None, ok: tuple | None = None, parameters: list | None = None,
         **errors: str):
    """OpenAPI: the bearer token of an admin, a JSON request body described by `schema`, the success answer
    `ok` = (status, schema, description), and the error answers (`e404="..."`)."""
    def decorate(view):
        if ok is not None:
            view = blp.alt_response(ok[0], schema=ok[1], description=ok[2], success=True)(view)
        return documented(blp, schema, auth=True, parameters=parameters, **{"e403": ADMIN_403, **errors})(view)
    return decorate


# -- agencies -------------------------------------------------------------------------------------------

@blp.route("/agencies")
@_doc(ok=(200, _list("agencies", AgencySchema), "Every agency."))
def list_agencies():
    """Every agency, active or not (`webhook_secret_set`, never the secret)."""
    _admin()
    return {"agencies": AgencySchema(many=True).dump(agencies.listing())}, 200, NO_STORE


@blp.route("/agencies", methods=["POST"])
@_doc(AgencyCreateSchema, ok=(201, AgencySecretSchema, "The agency (with its webhook_secret if it has a webhook_url)."),
      e409="`agency_exists`, `dispatcher_exists`.", e422="Invalid fields, unknown area.")
def create_agency():
    """Create an agency. With a `webhook_url`, the answer holds its `webhook_secret`, this once."""
    actor = _admin()
    agency, secret = agencies.create(_body(), audit.Actor.of(actor))
    return _with_secret(agency, secret, 201)


def _with_secret(agency: Agency, secret: str | None, status: int = 200):
    body = AgencySecretSchema().dump(agency) if secret else AgencySchema().dump(agency)
    if secret:
        body["webhook_secret"] = secret
    return body, status, NO_STORE


@blp.route("/agencies/<code>")
@_doc(ok=(200, AgencySchema, "The agency."), e404="`agency_not_found`.")
def get_agency(code: str):
    """One agency."""
    _admin()
    return _answer(AgencySchema(), agencies.find(code))


@blp.route("/agencies/<code>", methods=["PATCH"])
@_doc(AgencyUpdateSchema, ok=(200, AgencySecretSchema, "The agency (with a new webhook_secret if one was made)."),
      e404="`agency_not_found`.", e409="`dispatcher_exists`.", e422="Invalid fields.")
def update_agency(code: str):
    """Rename an agency, change its kind, area, contacts or webhook URL (null removes it and its secret). A
    first webhook URL makes a secret, in the answer this once."""
    actor = _admin()
    agency, secret = agencies.update(code, _body(), audit.Actor.of(actor))
    return _with_secret(agency, secret)


@blp.route("/agencies/<code>/webhook-secret", methods=["POST"])
@_doc(ok=(200, AgencySecretSchema, "The agency with its new webhook_secret."), e404="`agency_not_found`.",
      e409="`no_webhook`.")
def rotate_webhook_secret(code: str):
    """A new webhook secret, in the answer this once; the old one signs nothing from now on."""
    actor = _admin()
    agency, secret = agencies.rotate_secret(code, audit.Actor.of(actor))
    return _with_secret(agency, secret)


@blp.route("/agencies/<code>/deactivate", methods=["POST"])
@_doc(ok=(200, AgencySchema, "The agency, inactive."), e404="`agency_not_found`.",
      e409="`agency_has_open_reports` (fields.open_reports lists their codes), "
                                       "`agency_has_rules` (fields.routing_rules lists their ids).")
def deactivate_agency(code: str):
    """Deactivate an agency: refused while it holds open reports or active rules send reports to it."""
    actor = _admin()
    return _answer(AgencySchema(), agencies.set_active(code, False, audit.Actor.of(actor)))


@blp.route("/agencies/<code>/activate", methods=["POST"])
@_doc(ok=(200, AgencySchema, "The agency, active."), e404="`agency_not_found`.", e409="`dispatcher_exists`.")
def activate_agency(code: str):
    """Activate an agency again."""
    actor = _admin()
    return _answer(AgencySchema(), agencies.set_active(code, True, audit.Actor.of(actor)))


# -- categories and groups ------------------------------------------------------------------------------

@blp.route("/categories")
@_doc(ok=(200, _list("categories", CategorySchema), "Every category."))
def list_categories():
    """Every category, active or not, with its SLA and Open311 attributes."""
    _admin()
    return {"categories": CategorySchema(many=True).dump(catalog.all_categories())}, 200, NO_STORE


@blp.route("/categories", methods=["POST"])
@_doc(CategoryCreateSchema, ok=(201, CategorySchema, "The category."), e409="`category_exists`.",
      e422="Invalid fields (an SLA of 0 or less), unknown group.")
def create_category():
    """Create a category (an Open311 service)."""
    actor = _admin()
    return _answer(CategorySchema(), catalog.create_category(_body(), audit.Actor.of(actor)), 201)


@blp.route("/categories/<code>", methods=["PATCH"])
@_doc(CategoryUpdateSchema, ok=(200, CategorySchema, "The category."), e404="`category_not_found`.",
      e422="Invalid fields.")
def update_category(code: str):
    """Change a category: names, group, description, SLA (for reports routed from now on), attributes, active."""
    actor = _admin()
    return _answer(CategorySchema(), catalog.update_category(code, _body(), audit.Actor.of(actor)))


@blp.route("/category-groups")
@_doc(ok=(200, _list("groups", GroupSchema), "Every group."))
def list_groups():
    """The groups of categories."""
    _admin()
    return {"groups": GroupSchema(many=True).dump(catalog.all_groups())}, 200, NO_STORE


@blp.route("/category-groups", methods=["POST"])
@_doc(GroupCreateSchema, ok=(201, GroupSchema, "The group."), e409="`group_exists`.", e422="Invalid fields.")
def create_group():
    """Create a group of categories."""
    actor = _admin()
    return _answer(GroupSchema(), catalog.create_group(_body(), audit.Actor.of(actor)), 201)


@blp.route("/category-groups/<code>", methods=["PATCH"])
@_doc(GroupUpdateSchema, ok=(200, GroupSchema, "The group."), e404="`group_not_found`.", e422="Invalid fields.")
def update_group(code: str):
    """Rename or reorder a group."""
    actor = _admin()
    return _answer(GroupSchema(), catalog.update_group(code, _body(), audit.Actor.of(actor)))


# -- routing rules and re-routing -----------------------------------------------------------------------

@blp.route("/routing-rules")
@_doc(ok=(200, _list("rules", RuleSchema), "The rules."),
      parameters=[*(query(n, allowEmptyValue=True) for n in ("category", "area", "agency")),
                  query("active", {"type": "string", "enum": ["true", "false"]}, allowEmptyValue=True),
                  query("vintage", {"type": "string", "enum": ["current", "all"]})],
      e422="`validation_error`: an invalid filter or an unknown code.")
def list_rules():
    """Routing rules (`vintage=all`: also on areas of retired boundary vintages)."""
    _admin()
    return {"rules": RuleSchema(many=True).dump(routing_rules.listing(request.args))}, 200, NO_STORE


@blp.route("/routing-rules", methods=["POST"])
@_doc(RuleCreateSchema, ok=(201, RuleSchema, "The rule."),
      e409="`duplicate_rule`: the same category, area and priority.",
      e422="`agency_inactive`, or an unknown or retired reference.")
def create_rule():
    """Create a routing rule: it routes the reports routed from now on."""
    actor = _admin()
    return _answer(RuleSchema(), routing_rules.create(_body(), audit.Actor.of(actor)), 201)


def _rule_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdecimal() and len(raw) <= 9):
        raise ApiError(404, "rule_not_found", f"No routing rule {raw!r}.",
                       message_vi="Không có quy tắc phân công này.")
    return int(raw)


@blp.route("/routing-rules/<rule_id>")
@_doc(ok=(200, RuleSchema, "The rule."), e404="`rule_not_found`.")
def get_rule(rule_id: str):
    """One routing rule."""
    _admin()
    return _answer(RuleSchema(), routing_rules.find(_rule_id(rule_id)))


@blp.route("/routing-rules/<rule_id>", methods=["PATCH"])
@_doc(RuleUpdateSchema, ok=(200, RuleSchema, "The rule."), e404="`rule_not_found`.", e409="`duplicate_rule`.",
      e422="`agency_inactive`.")
def update_rule(rule_id: str):
    """Retarget, reprioritise, activate or deactivate a rule (for reports routed from now on)."""
    actor = _admin()
    return _answer(RuleSchema(), routing_rules.update(_rule_id(rule_id), _body(), audit.Actor.of(actor)))


@blp.route("/reroute", methods=["POST"])
@_doc(RerouteSchema, ok=(200, OBJECT, "What moved (or would): `dry_run`, `moved` (code, from and to agency), "
                                       "`moved_count`, `unchanged`, `audit_id`."),
      e422="Neither ward nor category, or an unknown one.")
def reroute():
    """Move the open reports of a ward and/or category to the agency the rules give now, as transfers by
    this admin (events, webhooks; the metrics count them); `dry_run` to see what would move."""
    actor = _admin()
    result = routing_rules.reroute(_body(), audit.Actor.of(actor), actor)
    return result.as_dict(), 200, NO_STORE


# -- areas ----------------------------------------------------------------------------------------------

@blp.route("/areas")
@_doc(ok=(200, _list("areas", AreaSchema), "The areas, without their polygons."),
      parameters=[query("vintage", {"type": "string", "enum": ["current", "all"], "default": "current"})],
      e422="`validation_error`: vintage is neither current nor all.")
def list_areas():
    """The areas of the current boundary vintage (`vintage=all`: every vintage), without their polygons."""
    _admin()
    vintage = request.args.get("vintage", "current")
    if vintage not in ("current", "all"):
        raise ApiError(422, "validation_error", "vintage is current or all.", message_vi="vintage là current hoặc all.",
                       fields={"vintage": ["current or all."]})
    return {"areas": AreaSchema(many=True).dump(areas.listing(vintage == "all"))}, 200, NO_STORE


@blp.route("/areas", methods=["POST"])
@blp.alt_response(200, schema=OBJECT, description="`dry_run`: the same answer, nothing written.", success=True)
@_doc(VintageLoadSchema, ok=(201, OBJECT, "What changed: retired and new codes, the new wards without a rule of their "
                                          "own, `coverage`."),
      e409="`vintage_not_newer`.",
      e422="Not a FeatureCollection in WGS84, a geometry that is not a (valid) Polygon or MultiPolygon "
           "(fields.features by index), a duplicate code, an unknown level, a `valid_from` more than a year "
           "ahead; `incomplete_ward_set`: the wards cover less than 99% of the current city outline (without "
           "`force`).")
def load_areas():
    """Load a new boundary vintage: the wards in `geojson` replace the current ones from `valid_from`.
    Reports keep the ward they were filed in; new reports are placed in the new wards; the rules and
    agencies of a ward whose code continues follow it. The answer says what changed, including the new
    wards without a rule of their own and the share of the current city outline covered (`coverage`);
    with `dry_run` the same answer (200), nothing written."""
    actor = _admin()
    summary = areas.load_new_vintage(_body(max_bytes=VINTAGE_MAX_BYTES), audit.Actor.of(actor))
    return summary, 200 if summary["dry_run"] else 201, NO_STORE


# -- Open311 api_keys -----------------------------------------------------------------------------------

@blp.route("/open311-keys")
@_doc(ok=(200, _list("keys", KeySchema), "Every api_key (never the key)."))
def list_keys():
    """The client applications' api_keys (never the keys)."""
    _admin()
    rows = db.session.scalars(select(Open311Key).order_by(Open311Key.id)).all()
    return {"keys": KeySchema(many=True).dump(rows)}, 200, NO_STORE


@blp.route("/open311-keys", methods=["POST"])
@_doc(KeyCreateSchema, ok=(201, NewKeySchema, "The api_key, this once."), e422="A name of 1 to 200 characters.")
def create_key():
    """A new api_key for a client application, in the answer this once (only its hash is kept)."""
    actor = _admin()
    name = KeyCreateSchema().load(_body())["name"]
    key, row = open311.issue_key(name, actor=audit.Actor.of(actor))
    db.session.commit()
    body = NewKeySchema().dump(row)
    body["api_key"] = key
    return body, 201, NO_STORE


@blp.route("/open311-keys/<key_id>/revoke", methods=["POST"])
@_doc(ok=(200, KeySchema, "The api_key, revoked."), e404="`key_not_found`.")
def revoke_key(key_id: str):
    """Revoke an api_key: its application can no longer submit."""
    actor = _admin()
    row = None
    if key_id.isascii() and key_id.isdecimal() and len(key_id) <= 9:
        row = open311.revoke_key(int(key_id), actor=audit.Actor.of(actor))
    if row is None:
        raise ApiError(404, "key_not_found", f"No api_key {key_id!r}.", message_vi="Không có khóa api_key này.")
    db.session.commit()
    return _answer(KeySchema(), row)


# -- accounts -------------------------------------------------------------------------------------------

@blp.route("/accounts")
@_doc(ok=(200, AccountListSchema, "The accounts."),
      parameters=[query("role", {"type": "string", "enum": list(ROLES)}, allowEmptyValue=True),
                  query("agency", description="a code", allowEmptyValue=True),
                  query("active", {"type": "string", "enum": ["true", "false"]}, allowEmptyValue=True)],
      e422="`validation_error`: an unknown role or agency, or active neither true nor false.")
def list_accounts():
    """Every account (`role`, `agency` and `active` narrow it), never a password hash."""
    _admin()
    stmt = select(Account).options(joinedload(Account.agency)).order_by(Account.username)
    role, agency, active = (request.args.get(n) for n in ("role", "agency", "active"))
    if role:
        if role not in ROLES:
            raise ApiError(422, "validation_error", f"role is one of {', '.join(ROLES)}.",
                           message_vi="Vai trò không hợp lệ.", fields={"role": [f"One of {', '.join(ROLES)}."]})
        stmt = stmt.where(Account.role == role)
    if agency:
        agency_id = db.session.scalar(select(Agency.id).where(Agency.code == agency))
        if agency_id is None:
            raise ApiError(422, "validation_error", f"No agency {agency!r}.", message_vi=f"Không có đơn vị {agency!r}.",
                           fields={"agency": [f"No agency {agency!r}."]})
        stmt = stmt.where(Account.agency_id == agency_id)
    if active in ("true", "false"):
        stmt = stmt.where(Account.active.is_(active == "true"))
    elif active:
        raise ApiError(422, "validation_error", "active is true or false.", message_vi="active là true hoặc false.",
                       fields={"active": ["true or false."]})
    found = db.session.scalars(stmt).all()
    return AccountListSchema().dump({"accounts": found, "count": len(found)}), 200, NO_STORE


@blp.route("/accounts", methods=["POST"])
@_doc(AccountCreateSchema, ok=(201, AccountSchema, "The account."), e409="`username_taken`.",
      e422="Invalid fields (password: at least 10 characters).")
def create_account():
    """Create an account of any role: officer or agency_admin (with `agency`), dispatcher, admin."""
    actor = _admin()
    data = AccountCreateSchema().load(_body())
    account = accounts.create(data["username"], data["role"], data["password"], actor=audit.Actor.of(actor),
                              agency_code=data.get("agency"), display_name=data["display_name"],
                              email=data.get("email"))
    db.session.commit()
    return _answer(ACCOUNT_SCHEMA, account, 201)


def _account(username: str) -> Account:
    account = accounts.find(username)
    if account is None:
        raise ApiError(404, "account_not_found", f"No account {username!r}.",
                       message_vi=f"Không có tài khoản {username!r}.")
    return account


@blp.route("/accounts/<username>/disable", methods=["POST"])
@_doc(ok=(200, AccountSchema, "The account, disabled."), e404="`account_not_found`.", e409="`last_admin`.")
def disable_account(username: str):
    """Disable an account (its tokens are revoked); not the last active admin."""
    actor = _admin()
    account = _account(username)
    accounts.set_active(account, False, actor=audit.Actor.of(actor))
    db.session.commit()
    return _answer(ACCOUNT_SCHEMA, account)


@blp.route("/accounts/<username>/enable", methods=["POST"])
@_doc(ok=(200, AccountSchema, "The account, enabled."), e404="`account_not_found`.")
def enable_account(username: str):
    """Enable a disabled account (its old tokens stay revoked)."""
    actor = _admin()
    account = _account(username)
    accounts.set_active(account, True, actor=audit.Actor.of(actor))
    db.session.commit()
    return _answer(ACCOUNT_SCHEMA, account)


@blp.route("/accounts/<username>/reset-password", methods=["POST"])
@_doc(PasswordSchema, ok=(200, AccountSchema, "The account."), e404="`account_not_found`.",
      e422="The password breaks the policy.")
def reset_account_password(username: str):
    """A new password (`{"password"}`): the account's tokens are revoked and a lockout cleared."""
    actor = _admin()
    account = _account(username)
    accounts.reset_password(account, PasswordSchema().load(_body())["password"], actor=audit.Actor.of(actor))
    db.session.commit()
    return _answer(ACCOUNT_SCHEMA, account)


# -- the audit log --------------------------------------------------------------------------------------

@blp.route("/audit")
@_doc(ok=(200, AuditPageSchema, "A page of the log, newest first."),
      parameters=[*(query(n) for n in ("action", "object_type", "object", "actor")),
                  query("from", description="a date or date-time"), query("to", description="a date or date-time"),
                  query("cursor", description="the next_cursor given"),
                  query("limit", {"type": "integer", "minimum": 1, "maximum": audit.PAGE_MAX,
                                  "default": audit.PAGE_DEFAULT})],
      e422="`validation_error`: an invalid filter, cursor or limit.")
def audit_log():
    """The audit log, newest first: who changed what, when, before and after. Filters: `action` (exact, or a
    prefix ending in `.`), `object_type`, `object`, `actor`, `from`/`to` (dates or date-times); pages of
    `limit` (50, at most 200), then `cursor` = the `next_cursor` given."""
    _admin()
    limit = int_arg("limit", audit.PAGE_DEFAULT, 1, audit.PAGE_MAX)
    page, cursor = audit.entries(request.args, limit)
    return AuditPageSchema().dump({"entries": page, "next_cursor": cursor}), 200, NO_STORE
