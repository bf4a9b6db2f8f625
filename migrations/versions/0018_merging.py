"""并单 and 一类事: a case joined to another (status `merged`, `merged_into_id`), clusters of similar cases
(`cluster_id`, `match_text`), the 主动治理 case opened from one (`governance_id`), and the indexes that find
possible duplicates fast

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 18:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_into_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cluster_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('match_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('governance_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_ticket_merged_into_id_ticket'), 'ticket', ['merged_into_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_ticket_governance_id_ticket'), 'ticket', ['governance_id'], ['id'])
        batch_op.drop_index(batch_op.f('ix_ticket_phone'))
        batch_op.create_index('ix_ticket_phone_created', ['phone', 'created_at'], unique=False)
        batch_op.create_index('ix_ticket_office_item_created', ['office_id', 'service_item', 'created_at'],
                              unique=False)
        batch_op.create_index('ix_ticket_cluster_created', ['cluster_id', 'created_at'], unique=False)
        batch_op.create_index('ix_ticket_merged_into', ['merged_into_id'], unique=False)
        batch_op.create_index('ix_ticket_governance', ['governance_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_governance')
        batch_op.drop_index('ix_ticket_merged_into')
        batch_op.drop_index('ix_ticket_cluster_created')
        batch_op.drop_index('ix_ticket_office_item_created')
        batch_op.drop_index('ix_ticket_phone_created')
        batch_op.create_index(batch_op.f('ix_ticket_phone'), ['phone'], unique=False)
        batch_op.drop_constraint(batch_op.f('fk_ticket_governance_id_ticket'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_ticket_merged_into_id_ticket'), type_='foreignkey')
        batch_op.drop_column('governance_id')
        batch_op.drop_column('match_text')
        batch_op.drop_column('cluster_id')
        batch_op.drop_column('merged_into_id')
