"""The public reads' fixed cost without its risks (real engines, not the tests' shared connection): a read-only
view's statements run in autocommit (no BEGIN and ROLLBACK), prepared by the driver but planned for each run's
own parameters, and leave the pool's connections transactional; its writes (`with primary():`) run in a
transaction; a pooled connection whose server session ended while it was
idle is replaced without a ping per checkout, and the request does not see it."""

from __future__ import annotations

import time

import psycopg
from sqlalchemy import event, text

from hue_reports.extensions import db
from hue_reports.replica import primary, replica_readable

MAP = "/api/v1/public/reports?bbox=107.55,16.44,107.62,16.49&zoom=10"


def _autocommit_spy(app) -> list[tuple[bool, int | None]]:
    """For each statement the app's primary engine runs: in autocommit? (psycopg's own flag) and after how many
    runs psycopg would prepare it (None: never)."""
    seen: list[tuple[bool, int | None]] = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda conn, cursor, *_: seen.append(
            (cursor.connection.autocommit, cursor.connection.prepare_threshold)))
    return seen


def test_a_public_read_runs_in_autocommit_and_the_pool_gets_its_connection_back_transactional(app, make_app):
    app = make_app(DATABASE_POOL_SIZE=1)
    seen = _autocommit_spy(app)
    response = app.test_client().get(MAP)
    assert response.status_code == 200, response.get_json()
    # every statement of the view without BEGIN and ROLLBACK (prepared from its fifth run, as any)
    assert seen and all(seen_ == (True, 5) for seen_ in seen)
    seen.clear()
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # the same pooled connection, for anything else
        assert db.session.connection().connection.dbapi_connection.autocommit is False
        db.session.rollback()
    assert seen == [(False, 5)]


def test_public_reads_are_prepared_and_still_planned_for_each_run(app, make_app):
    """psycopg prepares the map's statements from their fifth run (their parse is saved), and PostgreSQL plans
    every run for its own parameters (plan_cache_mode=force_custom_plan): never one generic plan for every view."""
    app = make_app(DATABASE_POOL_SIZE=1)
    client = app.test_client()
    for _ in range(12):
        assert client.get(MAP).status_code == 200
    with app.app_context():  # (the pool's one connection, the one the requests used)
        assert db.session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
        # (the statements with parameters: one without any has one plan, counted as generic)
        generic, custom = db.session.execute(text(
            "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) FROM pg_prepared_statements "
            "WHERE cardinality(parameter_types) > 0")).one()
        db.session.rollback()
    assert custom >= 7 and generic == 0, (generic, custom)


def test_writes_of_a_read_only_view_run_in_a_transaction(app, make_app, database_url):
    app = make_app()
    key = 0x6875650F

    @replica_readable
    def view():
        reads_autocommit = db.session.connection().connection.dbapi_connection.autocommit
        with primary():
            assert db.session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})
            with psycopg.connect(database_url) as other:  # the transaction-scoped lock is held until the end
                assert other.execute(f"SELECT pg_try_advisory_lock({key})").fetchone()[0] is False
            db.session.commit()
        with psycopg.connect(database_url) as other:
            assert other.execute(f"SELECT pg_try_advisory_lock({key})").fetchone()[0] is True
        return reads_autocommit

    with app.test_request_context("/", method="GET"):
        assert view() is True
        db.session.remove()


def test_a_pooled_connection_ended_while_idle_is_replaced_before_a_request_uses_it(app, make_app, database_url):
    app = make_app(DATABASE_POOL_SIZE=1)
    client = app.test_client()
    with app.app_context():
        pid = db.session.scalar(text("SELECT pg_backend_pid()"))
        db.session.remove()  # (back in the pool, idle)
    with psycopg.connect(database_url, autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        deadline = time.monotonic() + 10
        while other.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    response = client.get(MAP)
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        assert db.session.scalar(text("SELECT pg_backend_pid()")) != pid
        db.session.remove()
