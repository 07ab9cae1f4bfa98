"""Bearer tokens for staff accounts and for agencies' systems: opaque, random, stored hashed.

A token is `hue_` + 43 random URL-safe characters. Only its SHA-256 is stored
(a token is a random secret, so a fast hash is enough: nothing to brute-force),
it expires, and it can be revoked. Officer log-in (POST /api/v1/auth/token)
issues the same tokens; `flask tokens create` issues one for an agency's system.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from flask import request
from sqlalchemy import select, update

from ..errors import ApiError
from ..extensions import db
from ..models import Account, ApiToken

TOKEN_PREFIX = "hue_"
# last_used_at is written at most this often per token (not on every request).
LAST_USED_RESOLUTION = timedelta(minutes=5)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(account: Account, *, name: str | None = None, days: float = 30) -> tuple[str, ApiToken]:
    """A new token for `account` (added to the session; the caller commits). The token is returned
    once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(account=account, token_hash=token_digest(token), name=name,
                   expires_at=datetime.now(timezone.utc) + timedelta(days=days))
    db.session.add(row)
    return token, row


def _unauthorized(message: str, message_vi: str) -> ApiError:
    return ApiError(401, "unauthorized", message, message_vi=message_vi,
                    headers={"WWW-Authenticate": 'Bearer realm="hue-reports"'})


def current_account(roles: tuple[str, ...] | None = None) -> Account:
    """The active account of the request's `Authorization: Bearer` token; 401 without a valid one,
    403 if its role is not among `roles`."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Send Authorization: Bearer <token>.", "Cần đăng nhập (Authorization: Bearer <token>).")
    now = datetime.now(timezone.utc)
    row = db.session.execute(
        select(ApiToken, Account).join(Account, Account.id == ApiToken.account_id)
        .where(ApiToken.token_hash == token_digest(token.strip()))).first()
    if row is None or row.ApiToken.revoked_at is not None or row.ApiToken.expires_at <= now \
            or not row.Account.active:
        raise _unauthorized("This token is unknown, expired or revoked.",
                            "Mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi.")
    api_token, account = row.ApiToken, row.Account
    if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(update(ApiToken).where(ApiToken.id == api_token.id).values(last_used_at=now))
        db.session.commit()
    if roles is not None and account.role not in roles:
        raise ApiError(403, "forbidden", "This account may not do this.",
                       message_vi="Tài khoản này không có quyền thực hiện thao tác này.")
    return account
