"""texts and ladder steps name the event that caused them

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 19:00:00.000000

`sms_message.event_id`: the case event whose reaction wrote the text (a filing, a transfer, a closure, a rating,
a reminder); `sms_message.step_id`: the ladder step that fired it; `escalation_step.event_id`: the event that
planned the step or last moved it. Rows written before this revision have none: the case page says nothing then.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sms_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('step_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_sms_message_event_id_event', 'event', ['event_id'], ['id'])
        batch_op.create_foreign_key('fk_sms_message_step_id_escalation_step', 'escalation_step', ['step_id'], ['id'])
    with op.batch_alter_table('escalation_step', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_escalation_step_event_id_event', 'event', ['event_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('escalation_step', schema=None) as batch_op:
        batch_op.drop_constraint('fk_escalation_step_event_id_event', type_='foreignkey')
        batch_op.drop_column('event_id')
    with op.batch_alter_table('sms_message', schema=None) as batch_op:
        batch_op.drop_constraint('fk_sms_message_step_id_escalation_step', type_='foreignkey')
        batch_op.drop_constraint('fk_sms_message_event_id_event', type_='foreignkey')
        batch_op.drop_column('step_id')
        batch_op.drop_column('event_id')
