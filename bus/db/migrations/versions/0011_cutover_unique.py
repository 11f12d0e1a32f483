"""unit cutover unique: one cut-over per (from, to, effective); merges the branches into one head

A rerun of ``lgsp route reform`` with the same effective date recorded a second cut-over; the
duplicates (all but the first of each) are removed before the constraint is added.

Revision ID: 0011_cutover_unique
Revises: 0004_archive, 0005_reconcile, 0008_api_keys, 0008_unit_changes,
    0009_registry_deletes, 0010_operation_lock
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_cutover_unique"
down_revision = (
    "0004_archive",
    "0005_reconcile",
    "0008_api_keys",
    "0008_unit_changes",
    "0009_registry_deletes",
    "0010_operation_lock",
)
branch_labels = None
depends_on = None

_COLUMNS = ["from_hierarchy", "to_hierarchy", "effective"]


def upgrade() -> None:
    cut = sa.table(
        "unit_cutover",
        sa.column("id", sa.Integer),
        *(sa.column(c, sa.String) for c in _COLUMNS),
    )
    bind = op.get_bind()
    firsts = sa.select(sa.func.min(cut.c.id)).group_by(*(cut.c[c] for c in _COLUMNS))
    keep = [row[0] for row in bind.execute(firsts)]
    if keep:
        bind.execute(sa.delete(cut).where(cut.c.id.not_in(keep)))
    with op.batch_alter_table("unit_cutover") as batch:
        batch.create_unique_constraint("uq_unit_cutover", _COLUMNS)


def downgrade() -> None:
    with op.batch_alter_table("unit_cutover") as batch:
        batch.drop_constraint("uq_unit_cutover", type_="unique")
