"""先行联系: the first contact's deadline in working hours, and its due time on the ticket

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:00:00.000000

A deadline counted in working hours (the first contact, kind `contact`) keeps its limit in `working_minutes`
(`working_days` is 0 for it); the ticket keeps the due time of the first contact it awaits in `contact_due_at`, apart
from `due_at`, for the department's queue. Both are empty for every row written before: cases transferred before the
upgrade have no first-contact deadline. Downgrading drops them with the contact deadlines' limits (the deadline rows
and their ladder steps stay, read as the kind they are).
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deadline', schema=None) as batch_op:
        batch_op.add_column(sa.Column('working_minutes', sa.Integer(), nullable=True))
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_due_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('contact_due_at')
    with op.batch_alter_table('deadline', schema=None) as batch_op:
        batch_op.drop_column('working_minutes')
