"""申诉复核: appeal, one row per appealed 差评 (survey round) with the supervisor's decision

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('appeal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('survey_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.Column('filed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('filed_by', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('upheld', sa.Boolean(), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('lifted_rectification', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['decided_by'], ['user_account.id'], name=op.f('fk_appeal_decided_by_user_account')),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_appeal_department_id_department')),
    sa.ForeignKeyConstraint(['filed_by'], ['user_account.id'], name=op.f('fk_appeal_filed_by_user_account')),
    sa.ForeignKeyConstraint(['survey_id'], ['survey.id'], name=op.f('fk_appeal_survey_id_survey')),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_appeal_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeal')),
    sa.UniqueConstraint('survey_id', name=op.f('uq_appeal_survey_id'))
    )
    with op.batch_alter_table('appeal', schema=None) as batch_op:
        batch_op.create_index('ix_appeal_filed', ['filed_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeal_decided_at'), ['decided_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeal_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appeal_ticket_id'), ['ticket_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('appeal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appeal_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_appeal_department_id'))
        batch_op.drop_index(batch_op.f('ix_appeal_decided_at'))
        batch_op.drop_index('ix_appeal_filed')
    op.drop_table('appeal')
