"""reconcile: stored reconciliation reports

Revision ID: 0005_reconcile
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_reconcile"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_report",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(255)),
        sa.Column("source_table", sa.String(255), nullable=False),
        sa.Column("target_connector", sa.String(255)),
        sa.Column("target_table", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("agree", sa.Boolean, nullable=False),
        sa.Column("source_rows", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("target_rows", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("missing", sa.Integer, nullable=False, server_default="0"),
        sa.Column("extra", sa.Integer, nullable=False, server_default="0"),
        sa.Column("different", sa.Integer, nullable=False, server_default="0"),
        sa.Column("schema_errors", sa.Integer, nullable=False, server_default="0"),
        sa.Column("transient", sa.Integer, nullable=False, server_default="0"),
        sa.Column("repaired", sa.Integer),
        sa.Column("seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("detail", sa.JSON),
    )
    op.create_index(
        "ix_reconcile_report_connector", "reconcile_report", ["connector", "started_at"]
    )
    op.create_index(
        "ix_reconcile_report_target", "reconcile_report", ["target_connector", "started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_reconcile_report_target", table_name="reconcile_report")
    op.drop_index("ix_reconcile_report_connector", table_name="reconcile_report")
    op.drop_table("reconcile_report")
