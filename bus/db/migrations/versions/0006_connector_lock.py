"""connector lock: one sync run of a connector at a time

Revision ID: 0006_connector_lock
Revises: 0002_connectors
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_connector_lock"
down_revision = "0002_connectors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_lock",
        sa.Column(
            "connector",
            sa.String(63),
            sa.ForeignKey("connector.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("connector_lock")
