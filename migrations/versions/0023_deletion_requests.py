"""A citizen's deletion request remembered until the case has ended for good, then carried out by the scheduler

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 12:20:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

REQUESTED = 'anonymise_requested_at IS NOT NULL AND anonymised_at IS NULL'


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('anonymise_requested_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_ticket_anonymise_requested', 'ticket', ['updated_at', 'id'], unique=False,
                    postgresql_where=sa.text(REQUESTED), sqlite_where=sa.text(REQUESTED))


def downgrade() -> None:
    op.drop_index('ix_ticket_anonymise_requested', table_name='ticket')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('anonymise_requested_at')
