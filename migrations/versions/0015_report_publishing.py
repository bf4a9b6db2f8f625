"""月度通报: reports are drafts until published; 下步工作; thresholds of 主要问题; 典型案例

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 12:00:00.000000

- `report.status` (draft or published), `published_at`, `published_by`, `next_steps` (下步工作). Reports kept
  before this upgrade were already sent to the leaders: they become published, at their generation time;
- `office.report_thresholds` (the rates below which the report names a unit under 主要问题; null: the defaults);
- `ticket.typical_summary`, `ticket.typical_at` (典型案例: a closed case the office marked typical, and its summary).
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

TYPICAL = "typical_summary IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=10), nullable=False, server_default='published'))
        batch_op.add_column(sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('published_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('next_steps', sa.Text(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_report_published_by_user_account'), 'user_account',
                                    ['published_by'], ['id'])
    op.execute("UPDATE report SET published_at = generated_at")
    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.alter_column('status', existing_type=sa.String(length=10), server_default=None)

    with op.batch_alter_table('office', schema=None) as batch_op:
        batch_op.add_column(sa.Column('report_thresholds', sa.JSON(), nullable=True))

    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('typical_summary', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('typical_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_ticket_typical_closed', 'ticket', ['closed_at'], unique=False,
                    postgresql_where=sa.text(TYPICAL), sqlite_where=sa.text(TYPICAL))


def downgrade() -> None:
    op.drop_index('ix_ticket_typical_closed', table_name='ticket', postgresql_where=sa.text(TYPICAL),
                  sqlite_where=sa.text(TYPICAL))
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('typical_at')
        batch_op.drop_column('typical_summary')
    with op.batch_alter_table('office', schema=None) as batch_op:
        batch_op.drop_column('report_thresholds')
    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_report_published_by_user_account'), type_='foreignkey')
        batch_op.drop_column('next_steps')
        batch_op.drop_column('published_by')
        batch_op.drop_column('published_at')
        batch_op.drop_column('status')
