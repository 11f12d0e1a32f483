"""connectors: registered connectors and their per-table positions

Revision ID: 0002_connectors
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_connectors"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("type", sa.String(63), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("agency", sa.String(255), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "connector_position",
        sa.Column(
            "connector",
            sa.String(63),
            sa.ForeignKey("connector.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("table_name", sa.String(255), primary_key=True),
        sa.Column("position", sa.JSON),
        sa.Column("status", sa.String(16), nullable=False, server_default="ok"),
        sa.Column("error", sa.Text),
        sa.Column("rows_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("connector_position")
    op.drop_table("connector")
