"""Bearer tokens for staff accounts and for agencies' systems: opaque, random, stored hashed; and log-in.

A token is `hue_` + 43 random URL-safe characters. Only its SHA-256 is stored
(a token is a random secret, so a fast hash is enough: nothing to brute-force),
it expires, and it can be revoked. Officer log-in (POST /api/v1/auth/token)
issues the same tokens, valid TOKEN_HOURS; `flask tokens create` issues one for an
agency's system.

Log-in answers the same 401 `invalid_credentials` for an unknown username, a wrong
password and a disabled account, after the same argon2 work (an unknown username is
checked against a dummy hash). Guessing is throttled twice: per account
(LOGIN_MAX_FAILURES failures in a row lock it LOGIN_LOCKOUT_MINUTES, 429
`account_locked` even with the right password) and per client IP
(LOGIN_IP_MAX_FAILURES failures in LOGIN_IP_WINDOW_MINUTES, 429 `too_many_requests`),
the latter in Redis and not enforced while Redis is down, like the other rate limits.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import redis
from flask import current_app, request
from sqlalchemy import select, update

from ..errors import ApiError
from ..extensions import db, get_redis
from ..models import Account, ApiToken
from . import ratelimit
from .passwords import hash_password, verify_password

log = logging.getLogger(__name__)

TOKEN_PREFIX = "hue_"
# last_used_at is written at most this often per token (not on every request).
LAST_USED_RESOLUTION = timedelta(minutes=5)
LOGIN_TOKEN_NAME = "log-in"
USERNAME_MAX = 100  # accounts.username


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


def authenticate(roles: tuple[str, ...] | None = None) -> tuple[Account, ApiToken]:
    """The active account of the request's `Authorization: Bearer` token, and the token's row; 401
    without a valid one, 403 if its role is not among `roles`."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Send Authorization: Bearer <token>.", "Cần đăng nhập (Authorization: Bearer <token>).")
    return token_account(token.strip(), roles)


def token_account(token: str, roles: tuple[str, ...] | None = None) -> tuple[Account, ApiToken]:
    """The active account of a token (a bearer token, or the one the officer console keeps in its session
    cookie), and the token's row; 401 if it is unknown, expired or revoked, 403 if its role is not among
    `roles`."""
    now = datetime.now(timezone.utc)
    digest = token_digest(token)
    row = db.session.execute(
        select(ApiToken, Account).join(Account, Account.id == ApiToken.account_id)
        .where(ApiToken.token_hash == digest)).first()
    if row is None or not hmac.compare_digest(row.ApiToken.token_hash, digest) \
            or row.ApiToken.revoked_at is not None or row.ApiToken.expires_at <= now or not row.Account.active:
        raise _unauthorized("This token is unknown, expired or revoked.",
                            "Mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi.")
    api_token, account = row.ApiToken, row.Account
    if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(update(ApiToken).where(ApiToken.id == api_token.id).values(last_used_at=now))
        db.session.commit()
    if roles is not None and account.role not in roles:
        raise ApiError(403, "forbidden", "This account may not do this.",
                       message_vi="Tài khoản này không có quyền thực hiện thao tác này.")
    return account, api_token


def current_account(roles: tuple[str, ...] | None = None) -> Account:
    """The active account of the request's `Authorization: Bearer` token; 401 without a valid one,
    403 if its role is not among `roles`."""
    return authenticate(roles)[0]


def revoke_token(token_id: int) -> None:
    """Revoke one token (the caller commits). Revoking a revoked token changes nothing."""
    db.session.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                       .values(revoked_at=datetime.now(timezone.utc)))


def revoke_account_tokens(account_id: int) -> int:
    """Revoke every live token of an account (the caller commits); returns how many."""
    now = datetime.now(timezone.utc)
    result = db.session.execute(
        update(ApiToken).where(ApiToken.account_id == account_id, ApiToken.revoked_at.is_(None),
                               ApiToken.expires_at > now).values(revoked_at=now))
    return result.rowcount


# -- log-in ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Login:
    token: str
    expires_at: datetime
    account: Account


@functools.cache
def _dummy_hash() -> str:
    """An argon2 hash of a random password, made with the same parameters as real ones: an unknown
    username costs the same verification as a wrong password."""
    return hash_password(secrets.token_urlsafe(32))


def _invalid_credentials() -> ApiError:
    return ApiError(401, "invalid_credentials", "Wrong username or password.",
                    message_vi="Tên đăng nhập hoặc mật khẩu không đúng.")


def _retry_seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def login(username: str, password: str, client_ip: str | None) -> Login:
    """Check a username and password and issue a token valid TOKEN_HOURS (committed), or raise
    401 `invalid_credentials`, 429 `account_locked` or 429 `too_many_requests` (with Retry-After)."""
    config = current_app.config
    wait = _ip_blocked(client_ip)
    if wait is not None:
        raise _too_many_from_ip(wait)
    name = username.strip().lower()
    now = datetime.now(timezone.utc)
    account = None
    if 0 < len(name) <= USERNAME_MAX:
        # The row stays locked until the commit below: concurrent guesses at one account are counted one
        # after another, so none slips past the lockout. (NO KEY UPDATE: issuing tokens is not blocked.)
        account = db.session.scalars(select(Account).where(Account.username == name)
                                     .with_for_update(key_share=True)).first()
    locked_for = (account.locked_until - now if account is not None and account.locked_until is not None
                  and account.locked_until > now else None) if account is not None else _unknown_attempt(name)
    if locked_for is not None:
        db.session.rollback()
        raise ApiError(429, "account_locked",
                       "Too many failed log-ins: this account is locked for a while; try again later.",
                       message_vi="Đăng nhập sai quá nhiều lần: tài khoản tạm thời bị khóa, vui lòng thử lại sau.",
                       headers={"Retry-After": str(_retry_seconds(locked_for))})
    if account is None:
        verify_password(_dummy_hash(), password)  # (the attempt was counted first: an unknown name locks
        right = False                              # like a real one, bursts included, and reveals nothing)
    else:
        right = verify_password(account.password_hash, password)
    if not right or not account.active:
        if account is not None and not right:
            account.failed_logins += 1
            limit = config["LOGIN_MAX_FAILURES"]
            if limit and account.failed_logins >= limit:
                account.locked_until = now + timedelta(minutes=config["LOGIN_LOCKOUT_MINUTES"])
                account.failed_logins = 0
                log.warning("account %s locked after %s failed log-ins", account.username, limit)
        db.session.commit()
        wait = _ip_failure(client_ip)
        if wait is not None:
            raise _too_many_from_ip(wait)
        raise _invalid_credentials()
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = now
    token, row = issue_token(account, name=LOGIN_TOKEN_NAME, days=config["TOKEN_HOURS"] / 24)
    db.session.commit()
    return Login(token=token, expires_at=row.expires_at, account=account)


def _unknown_key(name: str) -> str:
    secret = current_app.config["SECRET_KEY"].encode()
    return "hue:login-unknown:" + hmac.new(secret, name.encode(), hashlib.sha256).hexdigest()[:32]


def _unknown_attempt(name: str) -> timedelta | None:
    """Count a log-in attempt at an unknown username BEFORE checking it (as a real account's row lock
    makes its attempts one after another), and answer as a real account would: the attempts after the
    LOGIN_MAX_FAILURES-th are refused for LOGIN_LOCKOUT_MINUTES. Returns the time left locked, or None."""
    config = current_app.config
    limit = config["LOGIN_MAX_FAILURES"]
    if not limit or not name:
        return None
    try:
        key, conn = _unknown_key(name), get_redis()
        count = conn.incr(key)
        if count == limit:  # this attempt (a failure, as the name does not exist) starts the lockout
            conn.expire(key, config["LOGIN_LOCKOUT_MINUTES"] * 60)
        elif count < limit:  # (a real account's failures do not wear off either; a month bounds Redis)
            conn.expire(key, 30 * 86400)
        ttl = conn.pttl(key)
    except redis.RedisError as exc:
        log.warning("log-in lockout of unknown names not kept (Redis unavailable): %s", exc)
        return None
    return timedelta(milliseconds=ttl) if count > limit and ttl > 0 else None


def _too_many_from_ip(wait: int) -> ApiError:
    return ApiError(429, "too_many_requests", f"Too many failed log-ins from this address; try again in {wait} s.",
                    message_vi=f"Đăng nhập sai quá nhiều lần từ địa chỉ này, vui lòng thử lại sau {wait} giây.",
                    headers={"Retry-After": str(wait)})


def _block_key(client_ip: str) -> str:
    """The Redis key marking an address blocked (keyed-hashed: an IP address is personal data)."""
    secret = current_app.config["SECRET_KEY"].encode()
    return "hue:login-blocked:" + hmac.new(secret, client_ip.encode(), hashlib.sha256).hexdigest()[:32]


def _ip_blocked(client_ip: str | None) -> int | None:
    """Seconds this address must still wait after too many failed log-ins, or None."""
    if not client_ip or current_app.config["LOGIN_IP_MAX_FAILURES"] <= 0:
        return None
    try:
        ms = get_redis().pttl(_block_key(client_ip))
    except redis.RedisError as exc:
        log.warning("log-in rate limit not enforced (Redis unavailable): %s", exc)
        return None
    return math.ceil(ms / 1000) if ms > 0 else None


def _ip_failure(client_ip: str | None) -> int | None:
    """Count a failed log-in from this address (ratelimit's window); past the limit, block the address
    until the window ends and return the seconds to wait."""
    config = current_app.config
    if not client_ip or config["LOGIN_IP_MAX_FAILURES"] <= 0:
        return None
    limit = ratelimit.Limit(config["LOGIN_IP_MAX_FAILURES"], config["LOGIN_IP_WINDOW_MINUTES"] * 60)
    wait = ratelimit.hit(get_redis(), "login", [f"ip:{client_ip}"], [limit], secret=config["SECRET_KEY"])
    if wait is None:
        return None
    try:
        get_redis().set(_block_key(client_ip), 1, ex=wait)
    except redis.RedisError as exc:
        log.warning("log-in rate limit not enforced (Redis unavailable): %s", exc)
    return wait
