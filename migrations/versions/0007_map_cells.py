"""The public map's rollup: report counts per web-map grid cell, status and category, for the clustering
zooms (a cache recomputed from reports by `flask map refresh` and the scheduler).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('map_cells',
    sa.Column('level', sa.SmallInteger(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('mx', sa.Integer(), nullable=False),
    sa.Column('my', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('overdue', sa.Boolean(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('sum_lon', sa.Float(precision=53), nullable=False),
    sa.Column('sum_lat', sa.Float(precision=53), nullable=False),
    sa.PrimaryKeyConstraint('level', 'category_id', 'mx', 'my', 'status', 'overdue', name=op.f('pk_map_cells'))
    )
    op.create_table('map_state',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finest_level', sa.SmallInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_map_state'))
    )


def downgrade():
    op.drop_table('map_state')
    op.drop_table('map_cells')
