"""Configuration from the environment, and the production safety check."""

import pytest

from hue_reports.config import DEV_SECRET_KEY, SETTINGS, ConfigError, database_uri, load_config

GOOD_SECRET = "x" * 40
PRODUCTION = {"HUE_ENV": "production", "SECRET_KEY": GOOD_SECRET,
              "DATABASE_URL": "postgresql://hue:pw@db/hue", "REDIS_URL": "redis://redis:6379/0"}


def test_production_is_the_default_and_names_everything_missing():
    """Without HUE_ENV, is the app in production mode, refusing to start and saying all that is missing?"""
    with pytest.raises(ConfigError) as refused:
        load_config({})
    for problem in ("DATABASE_URL must be set", "REDIS_URL must be set", "SECRET_KEY must be set"):
        assert problem in str(refused.value)


@pytest.mark.parametrize("secret, message", [
    (DEV_SECRET_KEY, "SECRET_KEY must be set"),
    ("short-secret", "at least 32 characters"),
])
def test_production_refuses_default_or_short_secret(secret, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**PRODUCTION, "SECRET_KEY": secret})


def test_production_refuses_debug():
    with pytest.raises(ConfigError, match="DEBUG must be off"):
        load_config({**PRODUCTION, "DEBUG": "true"})


@pytest.mark.parametrize("name", ["DATABASE_URL", "REDIS_URL"])
def test_production_refuses_the_development_servers_by_default(name):
    environ = {k: v for k, v in PRODUCTION.items() if k != name}
    with pytest.raises(ConfigError, match=f"production.*{name} must be set"):
        load_config(environ)


def test_production_accepts_explicit_settings():
    config = load_config(PRODUCTION)
    assert config["SECRET_KEY"] == GOOD_SECRET
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://hue:pw@db/hue"
    assert config["TESTING"] is False


def test_development_gets_the_insecure_dev_key():
    assert load_config({"HUE_ENV": "development"})["SECRET_KEY"] == DEV_SECRET_KEY


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="HUE_ENV must be one of"):
        load_config({"HUE_ENV": "staging"})


def test_unparseable_values_name_the_setting():
    with pytest.raises(ConfigError, match="MAX_REQUEST_MB"):
        load_config({"HUE_ENV": "development", "MAX_REQUEST_MB": "lots"})
    with pytest.raises(ConfigError, match="DEBUG"):
        load_config({"HUE_ENV": "development", "DEBUG": "perhaps"})


def test_request_limit_and_queues_are_read_from_the_environment():
    config = load_config({"HUE_ENV": "development", "MAX_REQUEST_MB": "7", "RQ_QUEUES": "routing, photos"})
    assert config["MAX_CONTENT_LENGTH"] == 7 * 1024 * 1024
    assert config["RQ_QUEUES"] == ["routing", "photos"]


@pytest.mark.parametrize("url, expected", [
    ("postgres://u:p@h:5/d", "postgresql+psycopg://u:p@h:5/d"),
    ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
    ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
])
def test_database_urls_use_psycopg3(url, expected):
    assert database_uri(url) == expected


def test_every_setting_is_documented():
    assert all(s.help.strip() for s in SETTINGS)
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)
