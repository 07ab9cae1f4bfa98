"""Officers: diacritic-insensitive search, feedback once per report, the reporter's push URL, overdue once per deadline.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21

`hue_search_key(text)` is lower(unaccent(text)) declared IMMUTABLE (unaccent itself is only STABLE, as
its dictionary could change), so that a trigram index can serve searches like "duong" for "đường".
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

SEARCH_KEY = """
CREATE FUNCTION hue_search_key(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN lower(public.unaccent('public.unaccent'::regdictionary, value))
"""


def upgrade():
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
    op.execute(SEARCH_KEY)
    for name, column in (('ix_reports_search', 'description'), ('ix_reports_search_address', 'address'),
                         ('ix_reports_search_code', 'public_code')):
        op.create_index(name, 'reports', [sa.text(f'hue_search_key({column}) gin_trgm_ops')], unique=False,
                        postgresql_using='gin')
    op.add_column('report_contacts', sa.Column('notify_url', sa.Text(), nullable=True))
    op.create_unique_constraint('uq_feedback_once', 'feedback', ['report_id'])
    # Overdue once per deadline, not once per report: a reopened report gets a new deadline.
    op.drop_index('uq_report_events_once', table_name='report_events')
    op.create_index('uq_report_events_once', 'report_events', ['report_id', 'type'], unique=True,
                    postgresql_where=sa.text("type IN ('submitted', 'routed')"))
    op.create_index('uq_report_events_overdue', 'report_events', ['report_id', sa.text("(data ->> 'due_epoch')")],
                    unique=True, postgresql_where=sa.text("type = 'overdue'"))


def downgrade():
    # (0003's index also made `overdue` once per report; with several deadlines' events that cannot hold,
    # so the downgrade keeps the once-per-report index without it.)
    op.drop_index('uq_report_events_overdue', table_name='report_events')
    op.drop_constraint('uq_feedback_once', 'feedback', type_='unique')
    op.drop_column('report_contacts', 'notify_url')
    for name in ('ix_reports_search', 'ix_reports_search_address', 'ix_reports_search_code'):
        op.drop_index(name, table_name='reports', postgresql_using='gin')
    op.execute("DROP FUNCTION hue_search_key(text)")
    # (the extensions stay: other objects may use them)
