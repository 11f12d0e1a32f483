"""archive: hash-chained event archive, chain heads, signed checkpoints, replay access log

Revision ID: 0004_archive
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_archive"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_entry",
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("kafka_partition", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("kafka_offset", sa.BigInteger, nullable=False),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("unit_path", sa.String(200), nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("op", sa.String(1), nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("event_key", sa.Text),
        sa.Column("source_unit", sa.Text, nullable=False),
        sa.Column("schema_id", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("entry_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("archived_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("topic", "kafka_partition", "epoch", "kafka_offset"),
    )
    op.create_index("ix_archive_entry_dataset_ts", "archive_entry", ["dataset", "ts_ms"])
    op.create_table(
        "archive_chain",
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("kafka_partition", sa.Integer, primary_key=True),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("unit_path", sa.String(200), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("head_seq", sa.BigInteger, nullable=False),
        sa.Column("head_offset", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("signed_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_archive_chain_dataset", "archive_chain", ["dataset"])
    op.create_table(
        "archive_checkpoint",
        sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "archive_replay_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True)),
        sa.Column("from_ts", sa.DateTime(timezone=True)),
        sa.Column("to_ts", sa.DateTime(timezone=True)),
        sa.Column("unit", sa.String(200)),
        sa.Column("target", sa.Text),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(200), nullable=False),
    )
    op.create_index("ix_archive_replay_log_dataset", "archive_replay_log", ["dataset"])


def downgrade() -> None:
    op.drop_table("archive_replay_log")
    op.drop_table("archive_checkpoint")
    op.drop_table("archive_chain")
    op.drop_index("ix_archive_entry_dataset_ts", table_name="archive_entry")
    op.drop_table("archive_entry")
