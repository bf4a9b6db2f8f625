"""indexes for the console's lists in time order (newest first, the id breaking ties)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:00:00.000000
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_ticket_created', 'ticket', ['created_at', 'id'], unique=False)
    op.create_index('ix_sms_message_created', 'sms_message', ['created_at', 'id'], unique=False)
    op.create_index('ix_survey_opened', 'survey', ['opened_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_survey_opened', table_name='survey')
    op.drop_index('ix_sms_message_created', table_name='sms_message')
    op.drop_index('ix_ticket_created', table_name='ticket')
