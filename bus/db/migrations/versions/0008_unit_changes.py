"""unit changes: operators' dated unit mappings and applied hierarchy cut-overs

Revision ID: 0008_unit_changes
Revises: 0007_broker_guard
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_unit_changes"
down_revision = "0007_broker_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_change",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("mapping", sa.String(255), nullable=False),
        sa.Column("from_hierarchy", sa.String(64), nullable=False),
        sa.Column("to_hierarchy", sa.String(64), nullable=False),
        sa.Column("old_code", sa.String(16), nullable=False),
        sa.Column("new_codes", sa.JSON, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("effective", sa.Date, nullable=False),
        sa.Column("rule", sa.JSON, nullable=True),
        sa.Column("new_name", sa.String(255), nullable=True),
        sa.Column("new_parent", sa.String(16), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("from_hierarchy", "old_code", "effective"),
    )
    op.create_table(
        "unit_cutover",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("from_hierarchy", sa.String(64), nullable=False),
        sa.Column("to_hierarchy", sa.String(64), nullable=False),
        sa.Column("effective", sa.Date, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("unit_cutover")
    op.drop_table("unit_change")
