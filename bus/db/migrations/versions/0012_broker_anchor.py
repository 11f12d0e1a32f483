"""broker anchor: per topic-partition, the last record the bus wrote (offset and digest), so
that the broker guard notices a log replaced by another one at least as long

Revision ID: 0012_broker_anchor
Revises: 0011_cutover_unique
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_broker_anchor"
down_revision = "0011_cutover_unique"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_anchor",
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("kafka_partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("anchor_offset", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("broker_anchor")
