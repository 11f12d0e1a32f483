"""operation lock: the run lock of a bus-wide operation (lgsp broker restore)

Revision ID: 0010_operation_lock
Revises: 0007_broker_guard
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_operation_lock"
down_revision = "0007_broker_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operation_lock",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("operation_lock")
