"""Accountability metrics: facts per report and per agency custody, derived from report_events; the
published answers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('metric_reports',
    sa.Column('report_id', sa.BigInteger(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=True),
    sa.Column('agency_id', sa.Integer(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('submitted_w', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolve_us', sa.BigInteger(), nullable=True),
    sa.Column('resolve_work_us', sa.BigInteger(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_from_w', sa.BigInteger(), nullable=True),
    sa.Column('sla_us', sa.BigInteger(), nullable=True),
    sa.Column('on_time', sa.Boolean(), nullable=True),
    sa.Column('transfers', sa.SmallInteger(), nullable=False),
    sa.Column('reopens', sa.SmallInteger(), nullable=False),
    sa.Column('rating', sa.SmallInteger(), nullable=True),
    sa.CheckConstraint("state IN ('open', 'resolved', 'rejected', 'duplicate')", name=op.f('ck_metric_reports_state')),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_metric_reports_agency_id_agencies')),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_metric_reports_category_id_categories')),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_metric_reports_report_id_reports'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ward_id'], ['admin_areas.id'], name=op.f('fk_metric_reports_ward_id_admin_areas')),
    sa.PrimaryKeyConstraint('report_id', name=op.f('pk_metric_reports'))
    )
    op.create_index('ix_metric_reports_submitted', 'metric_reports', ['submitted_at'], unique=False)
    op.create_table('metric_custodies',
    sa.Column('report_id', sa.BigInteger(), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('held_us', sa.BigInteger(), nullable=False),
    sa.Column('held_work_us', sa.BigInteger(), nullable=False),
    sa.Column('open_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('open_since_w', sa.BigInteger(), nullable=True),
    sa.Column('ack_us', sa.BigInteger(), nullable=True),
    sa.Column('ack_work_us', sa.BigInteger(), nullable=True),
    sa.Column('on_time', sa.Boolean(), nullable=True),
    sa.Column('transfers_out', sa.SmallInteger(), nullable=False),
    sa.Column('reopens', sa.SmallInteger(), nullable=False),
    sa.Column('rating', sa.SmallInteger(), nullable=True),
    sa.CheckConstraint("state IN ('open', 'resolved', 'transferred', 'rejected')", name=op.f('ck_metric_custodies_state')),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_metric_custodies_agency_id_agencies')),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_metric_custodies_report_id_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'agency_id', name=op.f('pk_metric_custodies'))
    )
    op.create_index('ix_metric_custodies_agency', 'metric_custodies', ['agency_id'], unique=False)
    op.create_table('metric_state',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('events_through', sa.BigInteger(), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_state'))
    )
    op.create_table('metric_results',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('events_through', sa.BigInteger(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_metric_results'))
    )


def downgrade():
    op.drop_table('metric_results')
    op.drop_table('metric_state')
    op.drop_index('ix_metric_custodies_agency', table_name='metric_custodies')
    op.drop_table('metric_custodies')
    op.drop_index('ix_metric_reports_submitted', table_name='metric_reports')
    op.drop_table('metric_reports')
