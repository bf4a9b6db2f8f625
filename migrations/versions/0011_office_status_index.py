"""an office's queues: ticket (office_id, status, due_at)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 22:10:00.000000

A county's queue page counts one status among its subtree's cases and the dashboard counts every status of
them; with 2,000,000 cases (tests/bench/offices.py) both went to the table for each of the county's cases. This
index answers both from the index alone, and an office's queue in deadline order.
"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_office_status_due', ['office_id', 'status', 'due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_office_status_due')
