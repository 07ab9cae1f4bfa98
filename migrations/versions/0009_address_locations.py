"""Reports located by the ward or commune their address names: location_source 'address'.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_constraint(op.f('ck_reports_location_source'), 'reports', type_='check')
    op.create_check_constraint(op.f('ck_reports_location_source'), 'reports',
                               "location_source IN ('client', 'exif', 'address')")


def downgrade():
    # Refused while reports located by their address exist: the previous schema has no word for how their
    # location is known, and relabelling them would make their approximate points look like positions.
    located = op.get_bind().scalar(sa.text("SELECT count(*) FROM reports WHERE location_source = 'address'"))
    if located:
        raise RuntimeError(f"{located} reports are located by their address (location_source 'address'): "
                           "decide what they become before downgrading below 0009")
    op.drop_constraint(op.f('ck_reports_location_source'), 'reports', type_='check')
    op.create_check_constraint(op.f('ck_reports_location_source'), 'reports',
                               "location_source IN ('client', 'exif')")
