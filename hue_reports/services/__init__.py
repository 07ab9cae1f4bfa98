"""The domain, free of HTTP and RQ: plain functions a view, a job, a command and a test all call."""

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def committing() -> Iterator[None]:
    """The session's work in the block is committed at its end, or rolled back if anything is raised."""
    from ..extensions import db

    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
