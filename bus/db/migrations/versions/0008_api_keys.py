"""api keys: agencies' keys to the HTTP API (lgsp serve), stored as SHA-256 with expiry

Revision ID: 0008_api_keys
Revises: 0003_catalog
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_api_keys"
down_revision = "0003_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_api_key",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("agency", sa.String(100), sa.ForeignKey("catalog_agency.name"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_catalog_api_key_agency", "catalog_api_key", ["agency"])


def downgrade() -> None:
    op.drop_index("ix_catalog_api_key_agency", "catalog_api_key")
    op.drop_table("catalog_api_key")
