"""Fixed-window rate limits in Redis, per client identity (IP address, device id).

Identities are keyed-hashed (HMAC with the server secret) before they become
Redis keys: an IP address is personal data, and a plain hash of one is easily
reversed. The counters expire with their window. If Redis is down the limit
is not enforced: refusing residents' reports because the limiter is sick would
be worse than letting a few too many through.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int


def hit(conn: redis.Redis, name: str, identities: list[str], limits: list[Limit], secret: str,
        now: float | None = None) -> int | None:
    """Count one event for each identity; return the seconds to wait if any limit is exceeded, else None."""
    limits = [limit for limit in limits if limit.count > 0]
    if not limits or not identities:
        return None
    now = time.time() if now is None else now
    windows = []
    try:
        pipe = conn.pipeline(transaction=False)
        for identity in identities:
            hashed = hmac.new(secret.encode(), identity.encode(), hashlib.sha256).hexdigest()[:32]
            for limit in limits:
                window = int(now // limit.seconds)
                key = f"hue:ratelimit:{name}:{hashed}:{limit.seconds}:{window}"
                pipe.incr(key)
                pipe.expire(key, limit.seconds + 60)
                windows.append((limit, window))
        counts = pipe.execute()[0::2]
    except redis.RedisError as exc:
        log.warning("rate limit not enforced (Redis unavailable): %s", exc)
        return None
    waits = [int((window + 1) * limit.seconds - now) + 1
             for (limit, window), count in zip(windows, counts, strict=True) if count > limit.count]
    return max(waits) if waits else None
