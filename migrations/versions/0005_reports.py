"""monthly reports, and the indexes their queries need

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 18:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.Column('pdf', sa.LargeBinary(), nullable=False),
    sa.Column('formula_version', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=8), nullable=False),
    sa.Column('generated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('generated_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['generated_by'], ['user_account.id'], name=op.f('fk_report_generated_by_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report')),
    sa.UniqueConstraint('month', name=op.f('uq_report_month'))
    )
    op.create_index('ix_event_action_at', 'event', ['action', 'at'], unique=False,
                    postgresql_include=['ticket_id', 'to_status'])
    op.create_index('ix_deadline_kind_started', 'deadline', ['kind', 'started_at'], unique=False)
    op.create_index('ix_deadline_kind_due', 'deadline', ['kind', 'due_at'], unique=False)
    op.create_index('ix_survey_closes_at', 'survey', ['closes_at'], unique=False,
                    postgresql_include=['ticket_id', 'score', 'rated_at'])
    op.create_index('ix_extension_request_decided_at', 'extension_request', ['decided_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_extension_request_decided_at', table_name='extension_request')
    op.drop_index('ix_survey_closes_at', table_name='survey')
    op.drop_index('ix_deadline_kind_due', table_name='deadline')
    op.drop_index('ix_deadline_kind_started', table_name='deadline')
    op.drop_index('ix_event_action_at', table_name='event')
    op.drop_table('report')
