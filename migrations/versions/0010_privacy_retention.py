"""Privacy: when a report's personal data was erased, and when a photo's original was let go.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22

Schema only: the retention job (services/privacy.py) fills these columns; nothing is erased here.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('reports', sa.Column('privacy_erased_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('photos', sa.Column('original_deleted_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    # (Erased data does not come back: downgrading only forgets when it was erased.)
    op.drop_column('photos', 'original_deleted_at')
    op.drop_column('reports', 'privacy_erased_at')
