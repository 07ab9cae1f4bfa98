"""Settings from the environment.

Every setting the application reads is declared once in SETTINGS, with its
default and meaning; the README's configuration table and the docker-compose
check are tested against this list. `load_config()` turns the environment into
a Flask config mapping, and in production refuses to start with unsafe values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ENVIRONMENTS = ("production", "development", "testing")
# Accepted outside production only; production refuses it (see check_production).
DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"
MIN_SECRET_KEY_LENGTH = 32


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str
    parse: Callable[[str], Any] = str
    # Production refuses to run on the default: it must be set explicitly.
    required_in_production: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("HUE_ENV", "production",
            "`production`, `development` or `testing`. Production refuses a default or short "
            "SECRET_KEY, DEBUG on, and a missing DATABASE_URL or REDIS_URL."),
    Setting("SECRET_KEY", None,
            "Secret for signing; at least 32 characters in production. Development uses a fixed "
            "insecure key."),
    Setting("DEBUG", "false", "Flask debug mode; refused in production.", _bool),
    Setting("DATABASE_URL", "postgresql://postgres@127.0.0.1:54329/hue_reports",
            "PostgreSQL+PostGIS database (the default is the project-local cluster of `make run`; "
            "production requires it set).", required_in_production=True),
    Setting("DATABASE_POOL_SIZE", "5", "SQLAlchemy connections kept per process.", int),
    Setting("DATABASE_REPLICA_URL", None,
            "A PostgreSQL streaming replica of DATABASE_URL (`pg_basebackup -R`; README: Scaling out). When set, "
            "the public read endpoints (map data, tiles, metrics, public pages, Open311 lists) read from it while it "
            "answers and is no more than REPLICA_MAX_LAG_SECONDS behind; everything else stays on the primary. "
            "The response header `X-Database` says which answered."),
    Setting("REPLICA_MAX_LAG_SECONDS", "30",
            "Lag beyond which the public reads go to the primary (measured from WAL positions, so an idle primary "
            "is no lag).", float),
    Setting("REPLICA_CHECK_SECONDS", "5", "How long each process keeps its measure of the replica's lag.", float),
    Setting("REPLICA_RETRY_SECONDS", "30",
            "After the replica failed a connection, how long the primary answers before it is tried again.", float),
    Setting("REDIS_URL", "redis://127.0.0.1:63799/0",
            "Redis for the RQ queues (the default is the project-local Redis of `make run`; "
            "production requires it set).", required_in_production=True),
    Setting("RQ_QUEUES", "routing,photos,notifications,periodic,rollups",
            "Queues a worker listens to by default, highest priority first (`rollups`: the metrics' and the "
            "map's periodic recomputations, seconds long at a million reports; give them their own worker with "
            "`flask worker -q rollups` and leave them out of the others, as docker-compose.yml does).", _list),
    Setting("MEDIA_ROOT", "./var/media", "Directory of the local-filesystem photo storage."),
    Setting("STORAGE_BACKEND", "local",
            "Where photos are stored: `local` (files under MEDIA_ROOT, one machine) or `s3` (a private bucket of "
            "an S3-compatible object store, shared by every API and worker process: the S3_* settings)."),
    Setting("S3_BUCKET", None, "The bucket of the photos (`s3` backend; required there). Keep it private: "
            "nothing is ever served from a public bucket path."),
    Setting("S3_ENDPOINT_URL", None,
            "The object store's URL, e.g. `http://minio:9000`; empty for AWS S3 (then S3_REGION picks the endpoint)."),
    Setting("S3_REGION", None, "The bucket's region, e.g. `ap-southeast-1`; empty takes AWS_REGION / "
            "AWS_DEFAULT_REGION, or `us-east-1`."),
    Setting("S3_ACCESS_KEY_ID", None, "Access key of the object store; empty uses boto3's own chain "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance or task role)."),
    Setting("S3_SECRET_ACCESS_KEY", None, "Secret key going with S3_ACCESS_KEY_ID."),
    Setting("S3_ADDRESSING_STYLE", "auto", "`path` (bucket in the URL's path: MinIO, Ceph and most self-hosted "
            "stores), `virtual` (bucket in the host name) or `auto` (boto3 decides; right for AWS S3)."),
    Setting("S3_PRESIGN_SECONDS", "0",
            "`0`: public derivatives are streamed from the bucket through the API. N > 0: they are answered with a "
            "redirect to a presigned URL valid N seconds (the store must then be reachable by clients at "
            "S3_ENDPOINT_URL). Originals are always streamed through the API, to those who may see them.", int),
    Setting("S3_TIMEOUT_SECONDS", "10",
            "Connect and read timeout of one request to the object store (three attempts, then 503 / a retried "
            "job).", float),
    Setting("MAX_REQUEST_MB", "60", "Largest request body accepted, in megabytes (413 above).", int),
    Setting("MAX_PHOTO_MB", "15", "Largest photo file accepted, in megabytes (413 above).", int),
    Setting("MAX_PHOTOS", "5", "Most photos in one report.", int),
    Setting("MAX_PHOTO_MEGAPIXELS", "50", "Largest photo accepted, in megapixels (422 above).", int),
    Setting("RATE_LIMIT_PER_MINUTE", "10", "Report submissions per minute per client (IP and device id); 0 is "
            "no limit.", int),
    Setting("RATE_LIMIT_PER_DAY", "100", "Report submissions per day per client (IP and device id); 0 is no "
            "limit.", int),
    Setting("TOKEN_HOURS", "12", "How long a token from log-in (POST /api/v1/auth/token) is valid, in hours.", int),
    Setting("LOGIN_MAX_FAILURES", "5",
            "Failed log-ins in a row that lock an account (429 `account_locked`); 0 is no lockout.", int),
    Setting("LOGIN_LOCKOUT_MINUTES", "15", "How long a locked account is refused, even with the right password.",
            int),
    Setting("LOGIN_IP_MAX_FAILURES", "20",
            "Failed log-ins per client IP in LOGIN_IP_WINDOW_MINUTES before its log-ins are refused (429); 0 is no "
            "limit.", int),
    Setting("LOGIN_IP_WINDOW_MINUTES", "15", "The window of LOGIN_IP_MAX_FAILURES, in minutes.", int),
    Setting("CLIENT_RATE_LIMIT_PER_MINUTE", "300", "Submissions per minute per registered client application "
            "(an Open311 api key, which submits for many residents from one address); 0 is no limit.", int),
    Setting("CLIENT_RATE_LIMIT_PER_DAY", "20000", "Submissions per day per registered client application; 0 is "
            "no limit.", int),
    Setting("IDEMPOTENCY_KEY_HOURS", "48", "How long an Idempotency-Key is remembered (at least 24).", int),
    Setting("LOCATION_MISMATCH_M", "500",
            "Distance between the client's position and a photo's GPS beyond which the report notes it.", int),
    Setting("CORS_ORIGINS", None,
            "Comma-separated origins (https://app.example.vn) whose pages may call the API (`/api/`, `/open311/`) "
            "from a browser; `*` for any. Empty: none (the default; phone apps and servers need no CORS). "
            "Credentials (cookies) are never allowed: the API takes bearer tokens.", _list),
    Setting("PROXY_FIX_X_FOR", "0",
            "Number of trusted proxies in front setting X-Forwarded-For (client IPs for rate limits).", int),
    Setting("HEARTBEAT_SECONDS", "60",
            "How often the scheduler sends a heartbeat job through the queue (shown by /readyz).", int),
    Setting("DUPLICATE_RADIUS_M", "50",
            "An open report of the same category this close (metres) makes a new one its duplicate; 0 is off.", int),
    Setting("DUPLICATE_DAYS", "7", "How far back (days) routing looks for the open report a new one duplicates.",
            int),
    Setting("ROUTING_SWEEP_SECONDS", "60",
            "A report still `submitted` this long after submission is queued for routing again.", int),
    Setting("PHOTO_JOB_TIMEOUT_SECONDS", "120",
            "A derivatives job running longer is stopped (and retried); one `started` twice as long ago is lost "
            "(its worker died) and queued again by the photo sweep.", int),
    Setting("PHOTO_SWEEP_SECONDS", "120",
            "A photo still without derivatives this long after intake has its job checked by the photo sweep "
            "(queued again if the queue lost it).", int),
    Setting("ROUTING_ATTEMPTS", "5",
            "Tries of a routing job before the report is left `routing_failed` for the dispatcher.", int),
    Setting("PUBLIC_BASE_URL", None,
            "This service's public URL (e.g. https://phananh.hue.gov.vn), sent in webhook messages so that their "
            "relative links can be followed."),
    Setting("ROUTING_JOB_TIMEOUT_SECONDS", "60",
            "A routing job running longer is stopped (and retried); one `started` twice as long ago is lost.", int),
    Setting("ROUTING_BATCH", "50",
            "A routing job also takes up to this many more routing jobs waiting in its queue and routes their "
            "reports in the same run (one transaction each), which spares the queue's own cost per job under a "
            "backlog; 0 routes one report per job.", int),
    Setting("NOTIFY_URL_PREFIXES", None,
            "Comma-separated URL prefixes a report's `notify_url` may start with (the city's push gateways); "
            "empty refuses every notify_url.", _list),
    Setting("MEDIA_URL_PREFIXES", None,
            "Comma-separated URL prefixes an Open311 `media_url` may be fetched from (a known app's photo store); "
            "empty fetches nothing (photos must then be uploaded).", _list),
    Setting("FEEDBACK_DAYS", "7",
            "Days after resolution in which the reporter may rate the fix (a 1 or 2 reopens it); then it closes.",
            int),
    Setting("PERSONAL_DATA_RETENTION_MONTHS", "12",
            "Months after a report is closed (closed, rejected, or a duplicate whose original is) before the "
            "reporter's personal data (contact, device id, push address, tracking token, feedback comment, "
            "original photos and their camera metadata) is erased by the scheduled job or `flask privacy purge`; "
            "at least 1.", int),
    Setting("METRICS_REFRESH_SECONDS", "60",
            "How often the scheduler brings the accountability metrics up to the new events and recomputes "
            "the answers people asked for (the published figures are at most this old, plus "
            "PUBLIC_METRICS_CACHE_SECONDS).", int),
    Setting("PUBLIC_METRICS_CACHE_SECONDS", "10",
            "How long each API process serves a stored metrics answer (JSON and CSV) from its memory before "
            "reading it again (a hit runs no SQL; the answer's `X-Database` is the database it was read from). "
            "0 reads it on every request; at most 30, well inside the answers' `max-age=60`.", float),
    Setting("PUBLIC_CLUSTER_BELOW_ZOOM", "14",
            "The public map data answers clusters (counts by status per grid cell) below this zoom.", int),
    Setting("PUBLIC_MAP_POINTS_MAX", "1000",
            "From PUBLIC_CLUSTER_BELOW_ZOOM on, a map view (GeoJSON with a zoom) holding more reports than "
            "this is answered as clusters of finer cells instead of points (a dense centre at street level).",
            int),
    Setting("PUBLIC_TILE_POINTS_MAX", "2000",
            "The same for a vector tile: more reports than this in a tile from PUBLIC_CLUSTER_BELOW_ZOOM on "
            "and it holds clusters (layer `clusters`) instead of points.", int),
    Setting("PUBLIC_POINTS_ZOOM", "19",
            "From this zoom on the map data is always points, however dense; the finest clusters are the "
            "tiles of the zoom before (about 150 m at the equator), and the map rollup holds every level up "
            "to theirs.",
            int),
    Setting("MAP_ROLLUP_MAX_AGE_SECONDS", "300",
            "The map's clusters come from the rollup the scheduler refreshes every METRICS_REFRESH_SECONDS; "
            "older than this (a stopped scheduler), they are counted live from the reports.", int),
    # The public map page (hue_reports/web): its background tiles. Markers never depend on them.
    Setting("MAP_TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            "Tile URL template of the public map's background ({z}/{x}/{y}, and {s} for subdomains); the only "
            "address the pages load anything from outside this service."),
    Setting("MAP_TILE_ATTRIBUTION",
            '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
            "Attribution shown on the map for its tiles (HTML: links allowed); required by most tile providers."),
    Setting("WEBHOOK_TIMEOUT_SECONDS", "10", "Timeout of one webhook delivery attempt.", int),
    Setting("WEBHOOK_RETRY_HOURS", "24", "How long a webhook message is retried (exponential backoff).", int),
    Setting("WORKER_CLASS", "simple",
            "`simple` runs jobs in the worker process (fast); `fork` forks a work horse per job (RQ's default).",
            str),
    Setting("LOG_LEVEL", "INFO", "Log level of the API, worker and scheduler."),
    Setting("LOG_FORMAT", "json", "`json`: one JSON object a log line (time, level, logger, message, request_id, "
            "job_id); `text`: plain lines for a terminal."),
)


class ConfigError(RuntimeError):
    """The configuration is unusable; the message says which setting and why."""


def database_uri(url: str) -> str:
    """SQLAlchemy URI for a PostgreSQL URL, using the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def load_config(environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask config from `environ` (default os.environ), then `overrides`."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.name, setting.default)
        if raw is None:
            config[setting.name] = None
            continue
        try:
            config[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{setting.name}: {exc}") from exc
    config.update(overrides or {})

    env = config["HUE_ENV"]
    if env not in ENVIRONMENTS:
        raise ConfigError(f"HUE_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    if env != "production" and not config["SECRET_KEY"]:
        config["SECRET_KEY"] = DEV_SECRET_KEY
    if env == "production":
        check_production(config, explicit=set(environ) | set(overrides or {}))
    if config["IDEMPOTENCY_KEY_HOURS"] < 24:
        raise ConfigError("IDEMPOTENCY_KEY_HOURS must be at least 24: phones retry for a day")
    for name in ("MAX_PHOTO_MB", "MAX_PHOTOS", "MAX_PHOTO_MEGAPIXELS", "MAX_REQUEST_MB"):
        if config[name] < 1:
            raise ConfigError(f"{name} must be at least 1")
    for name in ("ROUTING_ATTEMPTS", "ROUTING_JOB_TIMEOUT_SECONDS", "PHOTO_JOB_TIMEOUT_SECONDS",
                 "WEBHOOK_TIMEOUT_SECONDS", "WEBHOOK_RETRY_HOURS",
                 "DUPLICATE_DAYS"):
        if config[name] < 1:
            raise ConfigError(f"{name} must be at least 1")
    for name in ("DUPLICATE_RADIUS_M", "ROUTING_SWEEP_SECONDS", "PHOTO_SWEEP_SECONDS", "ROUTING_BATCH"):
        if config[name] < 0:
            raise ConfigError(f"{name} must not be negative")
    for name in ("TOKEN_HOURS", "LOGIN_LOCKOUT_MINUTES", "LOGIN_IP_WINDOW_MINUTES", "PERSONAL_DATA_RETENTION_MONTHS"):
        if config[name] < 1:
            raise ConfigError(f"{name} must be at least 1")
    for name in ("LOGIN_MAX_FAILURES", "LOGIN_IP_MAX_FAILURES"):
        if config[name] < 0:
            raise ConfigError(f"{name} must not be negative")
    for name in ("PUBLIC_MAP_POINTS_MAX", "PUBLIC_TILE_POINTS_MAX"):
        if config[name] < 1:
            raise ConfigError(f"{name} must be at least 1")
    if not 1 <= config["PUBLIC_CLUSTER_BELOW_ZOOM"] <= config["PUBLIC_POINTS_ZOOM"] <= 22:
        raise ConfigError("zooms: 1 <= PUBLIC_CLUSTER_BELOW_ZOOM <= PUBLIC_POINTS_ZOOM <= 22")
    if config["STORAGE_BACKEND"] not in ("local", "s3"):
        raise ConfigError(f"STORAGE_BACKEND must be `local` or `s3`, not {config['STORAGE_BACKEND']!r}")
    if config["STORAGE_BACKEND"] == "s3" and not config["S3_BUCKET"]:
        raise ConfigError("S3_BUCKET must be set with STORAGE_BACKEND=s3")
    if config["S3_ADDRESSING_STYLE"] not in ("auto", "path", "virtual"):
        raise ConfigError(f"S3_ADDRESSING_STYLE must be `auto`, `path` or `virtual`, not "
                          f"{config['S3_ADDRESSING_STYLE']!r}")
    if not 0 <= config["S3_PRESIGN_SECONDS"] <= 7 * 86400:
        raise ConfigError("S3_PRESIGN_SECONDS must be between 0 and 604800 (a presigned URL lives 7 days at most)")
    if not config["S3_TIMEOUT_SECONDS"] > 0:
        raise ConfigError("S3_TIMEOUT_SECONDS must be positive")
    if not 0 <= config["PUBLIC_METRICS_CACHE_SECONDS"] <= 30:
        raise ConfigError("PUBLIC_METRICS_CACHE_SECONDS must be between 0 and 30 (the answers' max-age is 60)")
    for name in ("REPLICA_MAX_LAG_SECONDS", "REPLICA_CHECK_SECONDS", "REPLICA_RETRY_SECONDS"):
        if config[name] < 0:
            raise ConfigError(f"{name} must not be negative")
    config["CORS_ORIGINS"] = _cors_origins(config["CORS_ORIGINS"] or [])
    if config["LOG_FORMAT"] not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT must be `json` or `text`, not {config['LOG_FORMAT']!r}")
    if config["WORKER_CLASS"] not in ("simple", "fork"):
        raise ConfigError(f"WORKER_CLASS must be `simple` or `fork`, not {config['WORKER_CLASS']!r}")

    engine_options = {
        # (no pool_pre_ping: a cheaper liveness check on each checkout, extensions.watch_connections)
        "hide_parameters": True,  # errors and logs never show the values (reporters' personal data)
        "pool_size": config["DATABASE_POOL_SIZE"],
        # JIT off: PostGIS functions are costed high, so small map queries looked big enough to be
        # compiled, which cost 0.4 s for a 20 ms query (seen on a tile at 1M reports). Custom plans always:
        # psycopg prepares a statement run 5 times on a connection (saving its parse, 0.5-0.7 ms for a map
        # query), and PostgreSQL still plans each run for its own parameters (never one generic plan for
        # every tile, which the first requests' parameters would have chosen).
        "connect_args": {"connect_timeout": 5, "options": "-c jit=off -c plan_cache_mode=force_custom_plan"},
    }
    binds = {}
    if config["DATABASE_REPLICA_URL"]:
        # (libpq's shortest connect timeout: a replica that does not answer costs a request 2 s, then is left
        # alone for REPLICA_RETRY_SECONDS; see hue_reports/replica.py)
        binds["replica"] = {**engine_options, "url": database_uri(config["DATABASE_REPLICA_URL"]),
                            "connect_args": {**engine_options["connect_args"], "connect_timeout": 2}}
    config.update({
        "TESTING": env == "testing",
        "SQLALCHEMY_DATABASE_URI": database_uri(config["DATABASE_URL"]),
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "SQLALCHEMY_BINDS": binds,
        "MAX_CONTENT_LENGTH": config["MAX_REQUEST_MB"] * 1024 * 1024,
        # flask-smorest: the OpenAPI document lives beside the API it describes.
        "API_TITLE": "hue-reports",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {"info": {
            "description": "The open backend for citizen field reports (phản ánh hiện trường): residents submit and "
                           "follow reports, officers work their agency's queue, the public reads the map data and "
                           "the accountability metrics. Every error is `{\"error\": {\"code\", \"message\", "
                           "\"message_vi\", \"fields\"}}`; interactive documentation at /api/docs."}},
    })
    return config


def _cors_origins(origins: list[str] | str) -> list[str]:
    """CORS_ORIGINS as origins (scheme://host[:port], no path), or ["*"]."""
    from urllib.parse import urlsplit

    if isinstance(origins, str):  # (an override given as the environment would give it)
        origins = _list(origins)
    cleaned = []
    for origin in origins:
        origin = origin.rstrip("/")
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path
                              or parts.query or parts.fragment):
            raise ConfigError(f"CORS_ORIGINS: {origin!r} is not an origin like https://app.example.vn (or *)")
        cleaned.append(origin)
    return cleaned


def check_production(config: Mapping[str, Any], explicit: set[str]) -> None:
    """Refuse the settings that are only acceptable on a developer's machine, naming all of them.

    `explicit`: the settings given in the environment or overrides (not defaulted).
    """
    problems = [f"{s.name} must be set" for s in SETTINGS if s.required_in_production and s.name not in explicit]
    secret = config.get("SECRET_KEY") or ""
    if not secret or secret == DEV_SECRET_KEY:
        problems.append("SECRET_KEY must be set")
    elif len(secret) < MIN_SECRET_KEY_LENGTH:
        problems.append(f"SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters")
    if config.get("DEBUG"):
        problems.append("DEBUG must be off")
    if problems:
        raise ConfigError("refusing to start in production (HUE_ENV=production): " + "; ".join(problems))
