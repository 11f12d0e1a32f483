"""broker guard: the broker identity and end offsets the bus last saw, source position marks

Revision ID: 0007_broker_guard
Revises: 0006_connector_lock
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_broker_guard"
down_revision = "0006_connector_lock"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_identity",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("cluster_id", sa.String(255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "broker_offset",
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("kafka_partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(255), primary_key=True),
        sa.Column("end_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "connector_position_mark",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "connector",
            sa.String(63),
            sa.ForeignKey("connector.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("position", sa.JSON),
        sa.Column("ends", sa.JSON, nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_connector_position_mark_table", "connector", "table_name", "id"),
    )


def downgrade() -> None:
    op.drop_table("connector_position_mark")
    op.drop_table("broker_offset")
    op.drop_table("broker_identity")
