"""Configuration from the environment, and the production safety check."""

import pytest

from hue_reports.config import DEV_SECRET_KEY, SETTINGS, ConfigError, database_uri, load_config

GOOD_SECRET = "x" * 40


def test_production_is_the_default_and_refuses_a_missing_secret():
    """Without HUE_ENV, is the app in production mode and does it refuse to start with no SECRET_KEY?"""
    with pytest.raises(ConfigError, match="SECRET_KEY must be set"):
        load_config({})


@pytest.mark.parametrize("secret, message", [
    (DEV_SECRET_KEY, "SECRET_KEY must be set"),
    ("short-secret", "at least 32 characters"),
])
def test_production_refuses_default_or_short_secret(secret, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"HUE_ENV": "production", "SECRET_KEY": secret})


def test_production_refuses_debug():
    with pytest.raises(ConfigError, match="DEBUG must be off"):
        load_config({"HUE_ENV": "production", "SECRET_KEY": GOOD_SECRET, "DEBUG": "true"})


def test_production_accepts_a_real_secret():
    config = load_config({"HUE_ENV": "production", "SECRET_KEY": GOOD_SECRET})
    assert config["SECRET_KEY"] == GOOD_SECRET
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
