"""catalog: agencies, datasets, grants and the access log

Revision ID: 0003_catalog
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_catalog"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_agency",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("display", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "catalog_dataset",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column(
            "publisher", sa.String(100), sa.ForeignKey("catalog_agency.name"), nullable=False
        ),
        sa.Column("units", sa.JSON, nullable=False),
        sa.Column("schema_file", sa.Text, nullable=False),
        sa.Column("record_schema", sa.JSON, nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("pii", sa.JSON, nullable=False),
        sa.Column("key_fields", sa.JSON, nullable=False),
        sa.Column("description_vi", sa.Text, nullable=False),
        sa.Column("description_en", sa.Text, nullable=False),
        sa.Column("legal_basis", sa.Text, nullable=False),
        sa.Column("frequency", sa.String(32), nullable=False),
        sa.Column("findings", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "catalog_grant",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dataset", sa.String(100), sa.ForeignKey("catalog_dataset.name"), nullable=False),
        sa.Column("agency", sa.String(100), sa.ForeignKey("catalog_agency.name"), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("legal_basis", sa.Text, nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("allow_pii", sa.Boolean, nullable=False),
        sa.Column("expires", sa.Date, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.String(255)),
    )
    op.create_index("ix_catalog_grant_agency_dataset", "catalog_grant", ["agency", "dataset"])
    op.create_table(
        "catalog_access_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("agency", sa.String(100), nullable=False),
        sa.Column("dataset", sa.String(255), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("grant_id", sa.Integer),
        sa.Column("detail", sa.JSON),
    )
    op.create_index("ix_catalog_access_log_at", "catalog_access_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_catalog_access_log_at", table_name="catalog_access_log")
    op.drop_table("catalog_access_log")
    op.drop_index("ix_catalog_grant_agency_dataset", table_name="catalog_grant")
    op.drop_table("catalog_grant")
    op.drop_table("catalog_dataset")
    op.drop_table("catalog_agency")
