"""default rating: surveys left unanswered are recorded as 基本满意 (3), `defaulted`; service item codes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 01:00:00.000000

- `survey.defaulted` (the closing sweep recorded the rating, not the citizen) and `survey.swept_at` (when the sweep
  settled an unanswered survey), with a partial index on the unanswered surveys it has not settled;
- `office.default_unanswered` (true: that office's unanswered surveys are defaulted; the provincial rules' default);
- `service_item.code` (事项编码, optional and unique), which the 好差评 export names.

Surveys that closed unanswered before this upgrade are marked settled as they are (not defaulted): the rule
applies from the upgrade on and never rewrites a month that is over.
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

UNSETTLED = "rated_at IS NULL AND swept_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.add_column(sa.Column('defaulted', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('swept_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.alter_column('defaulted', existing_type=sa.Boolean(), server_default=None)
    # Closed before the rule existed: settled as they are. CURRENT_TIMESTAMP is UTC on both backends (SQLite stores
    # naive UTC text, which compares as the column's own values do).
    op.execute("UPDATE survey SET swept_at = CURRENT_TIMESTAMP WHERE rated_at IS NULL AND closes_at <= CURRENT_TIMESTAMP")
    op.create_index('ix_survey_unsettled', 'survey', ['closes_at'], unique=False,
                    postgresql_where=sa.text(UNSETTLED), sqlite_where=sa.text(UNSETTLED))

    with op.batch_alter_table('office', schema=None) as batch_op:
        batch_op.add_column(sa.Column('default_unanswered', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('office', schema=None) as batch_op:
        batch_op.alter_column('default_unanswered', existing_type=sa.Boolean(), server_default=None)

    with op.batch_alter_table('service_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_service_item_code'), ['code'])


def downgrade() -> None:
    with op.batch_alter_table('service_item', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_service_item_code'), type_='unique')
        batch_op.drop_column('code')
    with op.batch_alter_table('office', schema=None) as batch_op:
        batch_op.drop_column('default_unanswered')
    op.drop_index('ix_survey_unsettled', table_name='survey')
    # A defaulted rating was never the citizen's: without the column that says so, it goes.
    op.execute("UPDATE survey SET score = NULL, rated_at = NULL, channel = NULL WHERE defaulted")
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.drop_column('swept_at')
        batch_op.drop_column('defaulted')
