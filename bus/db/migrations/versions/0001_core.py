"""core: schema registry and run history

Revision ID: 0001_core
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_subject",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("compatibility", sa.String(32)),
    )
    op.create_table(
        "registry_schema",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("schema_json", sa.Text, nullable=False),
    )
    op.create_table(
        "registry_version",
        sa.Column(
            "subject", sa.String(255), sa.ForeignKey("registry_subject.name"), primary_key=True
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("schema_id", sa.Integer, sa.ForeignKey("registry_schema.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("subject", "schema_id"),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows_in", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rows_out", sa.Integer, nullable=False, server_default="0"),
        sa.Column("dlq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("detail", sa.JSON),
    )
    op.create_index("ix_run_kind_name", "run", ["kind", "name", "started_at"])


def downgrade() -> None:
    op.drop_table("run")
    op.drop_table("registry_version")
    op.drop_table("registry_schema")
    op.drop_table("registry_subject")
