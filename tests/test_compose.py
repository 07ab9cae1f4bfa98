"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here).

Every command a container runs must exist in the project, every environment
variable it sets must be one the configuration reads, and the data that must
survive a container (database, photos) must be on named volumes.
"""

import ast
import inspect
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from gunicorn.config import Config

from hue_reports.config import SETTINGS
from tests.support import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
APP_SERVICES = {name: svc for name, svc in SERVICES.items() if svc.get("build")}
SETTING_NAMES = {s.name for s in SETTINGS}


def _commands(argv: list[str]) -> list[list[str]]:
    """The commands in a container command: `sh -c "a && b"` is two."""
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in argv[2].split("&&")]
    if argv[:1] == ["CMD"]:
        return [argv[1:]]
    return [argv]


def _check_flask_command(app, argv: list[str]) -> None:
    assert argv[:3] == ["flask", "--app", "wsgi"], argv
    command: click.Command = app.cli
    words = argv[3:]
    while isinstance(command, click.Group):
        name, words = words[0], words[1:]
        assert name in command.commands, f"`{' '.join(argv)}`: no command {name!r}"
        command = command.commands[name]
    options = {opt: param for param in command.params for opt in param.opts}
    choices = [c for param in command.params if isinstance(param.type, click.Choice) for c in param.type.choices]
    words = iter(words)
    for word in words:
        if word.startswith("-"):
            assert word in options, f"`{' '.join(argv)}`: unknown option {word}"
            if not options[word].is_flag:
                value = next(words, None)
                assert value is not None and not value.startswith("-"), f"`{' '.join(argv)}`: {word} needs a value"
        else:
            assert word in choices, f"`{' '.join(argv)}`: unexpected argument {word}"


def _check_command(app, argv: list[str]) -> None:
    program = argv[0]
    if program == "flask":
        _check_flask_command(app, argv)
    elif program == "gunicorn":
        try:
            Config().parser().parse_args(argv[1:])  # the installed gunicorn's own option parser
        except SystemExit:
            pytest.fail(f"gunicorn does not accept `{' '.join(argv)}`")
        module, attr = argv[-1].split(":")
        tree = ast.parse((ROOT / f"{module}.py").read_text())
        assigned = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)}
        assert attr in assigned, f"{module}.py defines no {attr}"
        assert "gunicorn==" in (ROOT / "requirements.txt").read_text()
    elif program == "python":
        assert argv[1] == "-c"
        ast.parse(argv[2])
        for path in ("/readyz", "/healthz"):
            if path in argv[2]:
                assert any(rule.rule == path for rule in app.url_map.iter_rules())
    else:
        pytest.fail(f"unknown program in a container command: {argv}")


def test_the_production_shape_has_its_services():
    assert {"postgis", "redis", "migrate", "api", "worker", "worker-rollups", "scheduler"} <= set(SERVICES)
    assert set(APP_SERVICES) == {"migrate", "api", "worker", "worker-rollups", "scheduler"}
    assert SERVICES["postgis"]["image"].startswith("postgis/postgis:15")


def test_long_running_services_have_healthchecks():
    for name, service in SERVICES.items():
        if name != "migrate":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_app_services_start_after_healthy_dependencies_and_the_migration():
    for name in ("api", "worker", "worker-rollups", "scheduler"):
        depends = APP_SERVICES[name]["depends_on"]
        assert depends["postgis"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_database_and_photos_live_on_named_volumes():
    named = set(COMPOSE["volumes"])
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgis"]["volumes"]
    for name, service in APP_SERVICES.items():
        media_root = service["environment"]["MEDIA_ROOT"]
        assert f"media:{media_root}" in service["volumes"], name
    assert {"pgdata", "media"} <= named


def test_every_environment_variable_set_is_one_the_config_reads():
    for name, service in APP_SERVICES.items():
        unknown = set(service["environment"]) - SETTING_NAMES
        assert not unknown, f"{name} sets variables the config does not read: {unknown}"


def test_production_secrets_are_required_not_defaulted():
    env = APP_SERVICES["api"]["environment"]
    assert env["HUE_ENV"] == "production"
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_every_container_command_exists_in_the_project(app):
    for service in APP_SERVICES.values():
        for argv in _commands(service["command"]):
            _check_command(app, argv)
        if "healthcheck" in service:
            for argv in _commands(service["healthcheck"]["test"]):
                _check_command(app, argv)


def test_the_command_check_catches_a_missing_command(app):
    """Can the check fail? A command the CLI does not have must be reported."""
    with pytest.raises(AssertionError, match="no command 'wroker'"):
        _check_command(app, ["flask", "--app", "wsgi", "wroker"])
    with pytest.raises(AssertionError, match="unknown option --fast"):
        _check_command(app, ["flask", "--app", "wsgi", "seed", "--fast"])
    with pytest.raises(pytest.fail.Exception, match="gunicorn does not accept"):
        _check_command(app, ["gunicorn", "--wrokers", "4", "wsgi:app"])


def test_the_dockerfile_copies_what_exists_and_runs_python_311():
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines() if line.strip()]
    assert any(words[:2] == ["FROM", "python:3.11-slim-bookworm"] for words in lines)
    copies = [words[1:-1] for words in lines if words[0] == "COPY"]
    assert copies
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert any(words[0] == "USER" and words[1] != "root" for words in lines)


def test_gunicorn_accepts_the_shared_settings_module(process_env):
    """gunicorn's own --check-config loads hue_reports/gunicorn_conf.py and the app, as the image does."""
    argv = SERVICES["api"]["command"]
    result = subprocess.run([str(Path(sys.executable).parent / argv[0]), "--check-config", *argv[1:]],
                            cwd=ROOT, env=process_env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_name_in_the_gunicorn_settings_module_is_a_gunicorn_setting():
    """gunicorn silently ignores unknown names in a config module: a typo would go unnoticed."""
    from hue_reports import gunicorn_conf

    names = {n for n, v in vars(gunicorn_conf).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert {"worker_class", "timeout"} <= names
    assert names <= set(Config().settings), names - set(Config().settings)


def test_the_database_healthcheck_goes_over_tcp():
    """During first-time initialisation the postgis image serves the Unix socket only: a socket
    check would call it healthy before the migration can connect over the network."""
    check = SERVICES["postgis"]["healthcheck"]["test"][1]
    assert "pg_isready -h 127.0.0.1" in check


def test_every_periodic_job_has_a_worker_listening_to_its_queue(app):
    """Each queue the scheduler enqueues on is read by some worker of the production shape (a worker without
    -q reads RQ_QUEUES); the rollups have a worker of their own, which the general worker leaves alone."""
    from hue_reports import scheduler

    listening: dict[str, set[str]] = {}
    for name, service in APP_SERVICES.items():
        argv = service["command"]
        if "worker" in argv:
            queues = argv[argv.index("-q") + 1].split(",") if "-q" in argv else app.config["RQ_QUEUES"]
            listening[name] = set(queues)
    for periodic in scheduler.schedule(app):
        assert any(periodic.queue in queues for queues in listening.values()), periodic.name
    assert listening["worker-rollups"] == {"rollups"} and "rollups" not in listening["worker"]
