"""registry deletes: a subject version can be soft-deleted (kept, hidden) before it is removed

Revision ID: 0009_registry_deletes
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_registry_deletes"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registry_version") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registry_version") as batch:
        batch.drop_column("deleted_at")
