"""Fixtures of the API tests."""

from __future__ import annotations

import pytest

from tests.support import staff_headers


@pytest.fixture
def admin(db_session):
    """Authorization headers of the demo admin account, in the test's rolled-back transaction."""
    return staff_headers("admin")
