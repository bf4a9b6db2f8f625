"""The console for clerks and leaders: who works a case (owner, handler), the 知识库, the notices bell, saved filters

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 15:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('knowledge_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('service_items', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('review_by', sa.Date(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_knowledge_entry_department_id_department')),
    sa.ForeignKeyConstraint(['office_id'], ['office.id'], name=op.f('fk_knowledge_entry_office_id_office')),
    sa.ForeignKeyConstraint(['updated_by'], ['user_account.id'], name=op.f('fk_knowledge_entry_updated_by_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_entry'))
    )
    with op.batch_alter_table('knowledge_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_knowledge_entry_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_knowledge_entry_office_id'), ['office_id'], unique=False)

    op.create_table('saved_filter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('query', sa.String(length=1000), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_saved_filter_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_filter')),
    sa.UniqueConstraint('user_id', 'endpoint', 'name', name=op.f('uq_saved_filter_user_id'))
    )
    with op.batch_alter_table('saved_filter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_saved_filter_user_id'), ['user_id'], unique=False)

    op.create_table('notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_notice_event_id_event')),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_notice_ticket_id_ticket')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_notice_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice'))
    )
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notice_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index('ix_notice_user_unread', ['user_id', 'read_at', 'id'], unique=False)

    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index('ix_event_actor_action', ['actor_id', 'action', 'id'], unique=False)

    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('handler_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_ticket_handler_status_due', ['handler_id', 'status', 'due_at'], unique=False)
        batch_op.create_index('ix_ticket_owner_status_due', ['owner_id', 'status', 'due_at'], unique=False)
        batch_op.create_index('ix_ticket_open_due', ['due_at', 'id'], unique=False, postgresql_where=sa.text(
            "status IN ('accepted', 'rectifying', 'replied', 'returned', 'submitted', 'transferred')"))
        batch_op.create_foreign_key(batch_op.f('fk_ticket_owner_id_user_account'), 'user_account', ['owner_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_ticket_handler_id_user_account'), 'user_account', ['handler_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_actor_action')

    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_ticket_handler_id_user_account'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_ticket_owner_id_user_account'), type_='foreignkey')
        batch_op.drop_index('ix_ticket_open_due')
        batch_op.drop_index('ix_ticket_owner_status_due')
        batch_op.drop_index('ix_ticket_handler_status_due')
        batch_op.drop_column('handler_id')
        batch_op.drop_column('owner_id')

    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.drop_index('ix_notice_user_unread')
        batch_op.drop_index(batch_op.f('ix_notice_ticket_id'))

    op.drop_table('notice')
    with op.batch_alter_table('saved_filter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_saved_filter_user_id'))

    op.drop_table('saved_filter')
    with op.batch_alter_table('knowledge_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_knowledge_entry_office_id'))
        batch_op.drop_index(batch_op.f('ix_knowledge_entry_department_id'))

    op.drop_table('knowledge_entry')
