"""grant units: a grant may be written for some units of a dataset (their codes and the
hierarchy they belong to); NULL: every unit, as before

Revision ID: 0013_grant_units
Revises: 0012_broker_anchor
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_grant_units"
down_revision = "0012_broker_anchor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_grant") as batch:
        batch.add_column(sa.Column("units", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("unit_hierarchy", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("catalog_grant") as batch:
        batch.drop_column("unit_hierarchy")
        batch.drop_column("units")
