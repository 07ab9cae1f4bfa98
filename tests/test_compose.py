"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here).

Every command a container runs must exist in the project, every environment
variable it sets must be one the configuration reads, and the data that must
survive a container (database, photos) must be on named volumes.
"""

import ast
import inspect
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from gunicorn.config import Config

from hue_reports.config import SETTINGS
from tests.support import ROOT, gunicorn_settings

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


WORKERS = {f"worker-{queue}" for queue in ("routing", "photos", "notifications", "periodic", "rollups")}


def test_the_production_shape_has_its_services():
    assert {"postgis", "redis", "migrate", "proxy", "api", "scheduler", "postgis-replica", *WORKERS} <= set(SERVICES)
    assert set(APP_SERVICES) == {"migrate", "api", "scheduler", *WORKERS}
    assert SERVICES["postgis"]["image"].startswith("postgis/postgis:15")


def test_long_running_services_have_healthchecks():
    for name, service in SERVICES.items():
        if name != "migrate":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_app_services_start_after_healthy_dependencies_and_the_migration():
    for name in ("api", "scheduler", *WORKERS):
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
    gunicorn_conf = gunicorn_settings()
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
    assert listening["worker-rollups"] == {"rollups"}


def test_each_queue_has_a_worker_pool_of_its_own(app):
    """A service per queue of RQ_QUEUES, listening to it alone, so each is scaled by its own count."""
    pools: dict[str, list[str]] = {}
    for name, service in APP_SERVICES.items():
        argv = service["command"]
        if argv[3:4] == ["worker"]:
            assert "-q" in argv, f"{name} listens to every queue"
            queues = argv[argv.index("-q") + 1].split(",")
            assert len(queues) == 1, f"{name} shares its workers between {queues}"
            pools.setdefault(queues[0], []).append(name)
    assert set(pools) == set(app.config["RQ_QUEUES"]) | {"rollups"}
    assert all(len(names) == 1 for names in pools.values()), pools


NGINX = (ROOT / "deploy/nginx.conf").read_text(encoding="utf-8")


def _nginx(directive: str) -> list[str]:
    """The arguments of every `directive ...;` in deploy/nginx.conf (comments removed)."""
    text = "\n".join(line.split("#", 1)[0] for line in NGINX.splitlines())
    return [m.group(1).strip() for m in re.finditer(rf"(?:^|[{{;\s]){re.escape(directive)}\s+([^;{{]*)[;{{]", text)]


def test_one_entry_point_spreads_requests_over_the_api_replicas():
    proxy, api = SERVICES["proxy"], APP_SERVICES["api"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert proxy["ports"] and "ports" not in api, "the API is reached through the proxy only"
    assert api["deploy"]["replicas"] >= 2
    # the upstream is the api service, on the port gunicorn binds
    bind = api["command"][api["command"].index("--bind") + 1]
    upstream = re.search(r"upstream\s+(\w+)\s*{([^}]*)}", NGINX)
    assert upstream and f"server api:{bind.rsplit(':', 1)[1]} resolve" in upstream.group(2)
    assert _nginx("proxy_pass") == [f"http://{upstream.group(1)}"]
    assert "127.0.0.11" in _nginx("resolver")[0]  # (Docker's DNS: the replicas as they come and go)
    assert int(proxy["image"].split(":")[1].split("-")[0].split(".")[1]) >= 28  # `resolve`: nginx 1.27.3+


def test_the_proxy_buffers_uploads_and_passes_the_client_address(app):
    assert _nginx("proxy_request_buffering") == ["on"]
    size = _nginx("client_max_body_size")[0]
    assert size.endswith("m") and int(size[:-1]) >= app.config["MAX_REQUEST_MB"]
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in _nginx("proxy_set_header")
    assert APP_SERVICES["api"]["environment"]["PROXY_FIX_X_FOR"] == "1"
    assert any(loc.startswith("= /metrics") for loc in _nginx("location"))  # (not published)


def test_the_replica_is_an_optional_profile_wired_to_the_api():
    replica = SERVICES["postgis-replica"]
    assert replica["profiles"] == ["replica"] and replica["image"] == SERVICES["postgis"]["image"]
    assert "pg_basebackup -h postgis" in replica["command"][2] and " -R " in replica["command"][2]
    assert replica["depends_on"]["postgis"]["condition"] == "service_healthy"
    assert any(v.startswith("pgreplica:") for v in replica["volumes"]) and "pgreplica" in COMPOSE["volumes"]
    assert APP_SERVICES["api"]["environment"]["DATABASE_REPLICA_URL"] == "${DATABASE_REPLICA_URL:-}"
    # the primary lets it stream: a replication line in pg_hba.conf at first initialisation
    script = next(v.split(":")[0] for v in SERVICES["postgis"]["volumes"] if "docker-entrypoint-initdb.d" in v)
    assert "host replication" in (ROOT / script).read_text()
