"""Staff accounts: creating them, disabling and enabling them, resetting their passwords, and who may
manage whom.

Roles: `officer` and `agency_admin` belong to one agency; `dispatcher` (of every agency; it may belong to
the city's dispatching agency, like the IOC) and `admin` do not. Passwords are argon2 hashes
(services/passwords.py) and follow one policy: at least PASSWORD_MIN characters, not the username.
Disabling an account or resetting its password revokes its tokens; a reset also clears a lockout.

Agency admins manage their own agency's officers (GET/POST /api/v1/agency/officers...); admins manage
every agency's accounts. Another agency's account is "not found" to an agency admin, never "forbidden",
so as not to reveal which usernames exist. The public representation (AccountSchema) never holds the
password hash.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import marshmallow as ma
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from ..errors import ApiError
from ..extensions import db
from ..models import ROLES, Account, Agency
from ..models.account import AGENCY_ROLES
from ..schemas.common import STRING, computed
from ..schemas.report import Text
from . import audit, auth
from .passwords import hash_password

PASSWORD_MIN = 10
PASSWORD_MAX = 1024  # argon2 takes any length; a bound keeps a request from hashing megabytes
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,98}[a-z0-9]$")
USERNAME_RULE = ("3 to 100 characters: lowercase letters, digits, `.`, `_` and `-`, starting and ending with a "
                 "letter or digit.")
# Who may create which roles through the API (the CLI may create any).
CREATABLE_BY = {"agency_admin": ("officer",), "admin": AGENCY_ROLES}


# -- representations and inputs ----------------------------------------------------------------------

def _locked_until(account: Account) -> str | None:
    until = account.locked_until
    return until.isoformat() if until is not None and until > datetime.now(timezone.utc) else None


class SessionAccountSchema(ma.Schema):
    """Who is logged in (the answer of POST /api/v1/auth/token)."""

    username = ma.fields.String()
    display_name = ma.fields.String()
    role = ma.fields.String(metadata={"enum": list(ROLES),
                                      "description": "officer, agency_admin, dispatcher or admin"})
    agency = computed(lambda a: a.agency.code if a.agency is not None else None, STRING, nullable=True,
                      description="the agency's code, or null")


class AccountSchema(SessionAccountSchema):
    """An account as its managers see it: never its password hash."""

    email = ma.fields.String(allow_none=True)
    active = ma.fields.Boolean()
    locked_until = computed(_locked_until, {"type": "string", "format": "date-time"}, nullable=True,
                            description="set while failed log-ins lock the account")
    last_login_at = ma.fields.DateTime(allow_none=True)
    created_at = ma.fields.DateTime()


ACCOUNT_SCHEMA = AccountSchema()
SESSION_ACCOUNT_SCHEMA = SessionAccountSchema()


class AccountListSchema(ma.Schema):
    accounts = ma.fields.List(ma.fields.Nested(AccountSchema))
    count = ma.fields.Integer()


def password_problems(password: str, username: str) -> list[str]:
    """What is wrong with a new password under the policy ([] if nothing)."""
    problems = []
    if len(password) < PASSWORD_MIN:
        problems.append(f"At least {PASSWORD_MIN} characters.")
    if len(password) > PASSWORD_MAX:
        problems.append(f"At most {PASSWORD_MAX} characters.")
    if password.strip().lower() == username.strip().lower():
        problems.append("Must not be the username.")
    return problems


def check_password(password: str, username: str) -> None:
    problems = password_problems(password, username)
    if problems:
        raise ma.ValidationError({"password": problems})


class Username(ma.fields.String):
    """A username, compared and stored in lowercase."""

    def _deserialize(self, value, attr, data, **kwargs):
        name = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if not USERNAME.fullmatch(name):
            raise ma.ValidationError(USERNAME_RULE)
        return name


class LoginSchema(ma.Schema):
    """POST /api/v1/auth/token."""

    class Meta:
        unknown = ma.EXCLUDE

    username = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=320))
    password = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=PASSWORD_MAX))


class AccountCreateSchema(ma.Schema):
    """A new account's fields (POST /api/v1/agency/officers, and `flask users create`)."""

    username = Username(required=True)
    display_name = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    email = ma.fields.Email(allow_none=True, validate=ma.validate.Length(max=320))
    password = ma.fields.String(required=True, load_only=True)
    role = ma.fields.String(load_default="officer", validate=ma.validate.OneOf(ROLES))
    agency = ma.fields.String(allow_none=True, validate=ma.validate.Length(min=1, max=64),
                              metadata={"description": "the agency's code (admins; an agency admin's own by "
                                                       "default)"})

    @ma.validates_schema
    def password_policy(self, data, **kwargs):
        if "password" in data and "username" in data:
            check_password(data["password"], data["username"])


class PasswordSchema(ma.Schema):
    """POST /api/v1/agency/officers/<username>/reset-password."""

    password = ma.fields.String(required=True, load_only=True)


# -- the accounts -------------------------------------------------------------------------------------

def find(username: str) -> Account | None:
    if "\x00" in username:  # (no name has one: PostgreSQL cannot even compare it)
        return None
    return db.session.scalars(select(Account).options(joinedload(Account.agency))
                              .where(Account.username == username.strip().lower())).first()


def _agency_field(agency_code: str | None, role: str) -> Agency | None:
    """The agency for an account of `role`: required for officers and agency admins, refused for admins,
    and for a dispatcher only the dispatching agency."""
    if agency_code is None:
        if role in AGENCY_ROLES:
            raise ma.ValidationError({"agency": [f"An {role} belongs to an agency: give its code."]})
        return None
    if role == "admin":
        raise ma.ValidationError({"agency": ["An admin belongs to no agency."]})
    agency = db.session.scalars(select(Agency).where(Agency.code == agency_code)).first()
    if agency is None:
        raise ma.ValidationError({"agency": [f"No agency {agency_code!r}."]})
    if role == "dispatcher" and not agency.is_dispatcher:
        raise ma.ValidationError({"agency": ["A dispatcher works for every agency: it belongs to none, or to the "
                                             "dispatching agency."]})
    return agency


def _username_taken(username: str) -> ApiError:
    return ApiError(409, "username_taken", f"The username {username!r} is taken.",
                    message_vi=f"Tên đăng nhập {username!r} đã được sử dụng.",
                    fields={"username": ["Taken."]})


def _check_new(fields: dict, partial: tuple[str, ...] = ()) -> tuple[dict, Agency | None]:
    data = AccountCreateSchema().load(fields, partial=partial)
    agency = _agency_field(data.get("agency"), data["role"])
    if find(data["username"]) is not None:
        raise _username_taken(data["username"])
    return data, agency


def _fields(username: str, role: str, agency_code: str | None, display_name: str | None,
            email: str | None) -> dict:
    return {"username": username, "role": role, "agency": agency_code, "email": email,
            "display_name": display_name if display_name is not None else username}


def check_new(username: str, role: str, *, agency_code: str | None = None, display_name: str | None = None,
              email: str | None = None) -> None:
    """Everything `create` checks but the password (so that a command can ask for it afterwards)."""
    _check_new(_fields(username, role, agency_code, display_name, email), partial=("password",))


AUDIT_SNAPSHOT = AccountSchema(only=("username", "display_name", "email", "role", "agency", "active"))


def snapshot(account: Account) -> dict:
    """What the audit log keeps of an account: never its password or hash."""
    return AUDIT_SNAPSHOT.dump(account)


def create(username: str, role: str, password: str, *, actor: audit.Actor, agency_code: str | None = None,
           display_name: str | None = None, email: str | None = None) -> Account:
    """A new active account, flushed with its audit entry (the caller commits). Raises ma.ValidationError
    (422) for bad fields, an unknown agency or a password outside the policy, ApiError 409
    `username_taken`."""
    data, agency = _check_new({**_fields(username, role, agency_code, display_name, email), "password": password})
    account = Account(username=data["username"], display_name=data["display_name"], email=data.get("email"),
                      role=data["role"], agency=agency, password_hash=hash_password(data["password"]))
    try:
        with db.session.begin_nested():  # a concurrent creation of the same username loses here
            db.session.add(account)
    except IntegrityError:
        raise _username_taken(data["username"]) from None
    audit.record(actor, "account.create", "account", account.username, None, snapshot(account))
    return account


def set_active(account: Account, active: bool, *, actor: audit.Actor) -> int:
    """Enable or disable an account, with its audit entry (the caller commits). Disabling revokes its
    tokens (returns how many); the last active admin is not disabled (409 `last_admin`)."""
    # Every active admin's row, locked in id order (the account itself among them): two admins disabling
    # each other wait for one another instead of each locking one row and deadlocking on the other's; the
    # second then sees the first's change, and is refused if it would leave no active admin.
    if not active and account.active and account.role == "admin" and not any(
            admin_id != account.id for admin_id in db.session.scalars(
                select(Account.id).where(Account.role == "admin", Account.active).order_by(Account.id)
                .with_for_update())):
        raise ApiError(409, "last_admin", "This is the last active admin: create or enable another one first.",
                       message_vi="Đây là quản trị viên cuối cùng còn hoạt động: hãy tạo quản trị viên khác trước.")
    before = snapshot(account)
    account.active = active
    revoked = 0 if active else auth.revoke_account_tokens(account.id)
    db.session.flush()
    audit.record(actor, "account.enable" if active else "account.disable", "account", account.username, before,
                 {**snapshot(account), "tokens_revoked": revoked})
    return revoked


def reset_password(account: Account, password: str, *, actor: audit.Actor) -> int:
    """A new password under the policy (ma.ValidationError otherwise); revokes the account's tokens and
    clears a lockout, with its audit entry (the caller commits). Returns how many tokens were revoked."""
    check_password(password, account.username)
    account.password_hash = hash_password(password)
    account.failed_logins = 0
    account.locked_until = None
    revoked = auth.revoke_account_tokens(account.id)
    audit.record(actor, "account.reset_password", "account", account.username, None,
                 {**snapshot(account), "password_changed": True, "tokens_revoked": revoked})
    return revoked


# -- who manages whom ---------------------------------------------------------------------------------

def _not_found(username: str) -> ApiError:
    return ApiError(404, "account_not_found", f"Your agency has no account {username!r}.",
                    message_vi=f"Đơn vị của bạn không có tài khoản {username!r}.")


def agency_accounts(actor: Account, agency_code: str | None = None) -> list[Account]:
    """The accounts of the actor's agency (an agency admin), or of every agency or `agency_code` (an admin)."""
    stmt = (select(Account).options(joinedload(Account.agency)).where(Account.role.in_(AGENCY_ROLES))
            .order_by(Account.username))
    if actor.role == "admin":
        if agency_code is not None:
            agency_id = db.session.scalar(select(Agency.id).where(Agency.code == agency_code))
            if agency_id is None:
                raise ApiError(422, "validation_error", f"No agency {agency_code!r}.",
                               message_vi=f"Không có đơn vị {agency_code!r}.",
                               fields={"agency": [f"No agency {agency_code!r}."]})
            stmt = stmt.where(Account.agency_id == agency_id)
    else:
        stmt = stmt.where(Account.agency_id == actor.agency_id)
    return list(db.session.scalars(stmt))


def managed(actor: Account, username: str) -> Account:
    """The account `username` if `actor` may manage it: an agency admin its agency's officers, an admin
    every agency's accounts. Another agency's account, or one that is nobody's to manage here, is 404;
    an account of the actor's own agency that it may not manage (an agency admin) is 403."""
    account = find(username)
    if account is None or account.role not in AGENCY_ROLES or (
            actor.role != "admin" and account.agency_id != actor.agency_id):
        raise _not_found(username)
    if actor.role != "admin" and account.role != "officer":
        raise ApiError(403, "forbidden", "An agency admin manages its agency's officers only.",
                       message_vi="Quản trị đơn vị chỉ quản lý tài khoản cán bộ của đơn vị mình.")
    return account


def create_for(actor: Account, data: dict) -> Account:
    """An account created through the API by `actor` (an agency admin: an officer of its own agency;
    an admin: an officer or agency admin of any agency). `data` comes from AccountCreateSchema."""
    if data["role"] not in CREATABLE_BY.get(actor.role, ()):
        raise ApiError(403, "forbidden", f"This account may not create {data['role']} accounts.",
                       message_vi="Tài khoản này không được tạo tài khoản với vai trò này.",
                       fields={"role": [f"Not one of: {', '.join(CREATABLE_BY.get(actor.role, ()))}."]})
    agency_code = data.get("agency")
    if actor.role != "admin":
        own = actor.agency.code if actor.agency is not None else None
        if agency_code is not None and agency_code != own:
            raise ApiError(403, "forbidden", "An agency admin creates accounts of its own agency only.",
                           message_vi="Quản trị đơn vị chỉ tạo tài khoản cho đơn vị mình.",
                           fields={"agency": ["Not your agency."]})
        agency_code = own
    return create(data["username"], data["role"], data["password"], actor=audit.Actor.of(actor),
                  agency_code=agency_code, display_name=data["display_name"], email=data.get("email"))
