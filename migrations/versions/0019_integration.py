"""Integration API: ticket source and external reference, idempotency keys of staff filings, API token scopes

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 21:20:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=8), nullable=True))
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('external_ref', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_ticket_external_ref_source', ['external_ref', 'source'], unique=True,
                              postgresql_where=sa.text('external_ref IS NOT NULL'),
                              sqlite_where=sa.text('external_ref IS NOT NULL'))
        batch_op.create_index('ix_ticket_source_created', ['source', 'created_at', 'id'], unique=False,
                              postgresql_where=sa.text('source IS NOT NULL'),
                              sqlite_where=sa.text('source IS NOT NULL'))
    op.create_table(
        'idempotency_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('response', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_idempotency_key_user_id_user_account')),
        sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_idempotency_key_ticket_id_ticket')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_key')),
    )
    op.create_index('ix_idempotency_key_user_key', 'idempotency_key', ['user_id', 'key'], unique=True)
    op.create_index(op.f('ix_idempotency_key_created_at'), 'idempotency_key', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_idempotency_key_created_at'), table_name='idempotency_key')
    op.drop_index('ix_idempotency_key_user_key', table_name='idempotency_key')
    op.drop_table('idempotency_key')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_source_created',
                            postgresql_where=sa.text('source IS NOT NULL'), sqlite_where=sa.text('source IS NOT NULL'))
        batch_op.drop_index('ix_ticket_external_ref_source', postgresql_where=sa.text('external_ref IS NOT NULL'),
                            sqlite_where=sa.text('external_ref IS NOT NULL'))
        batch_op.drop_column('external_ref')
        batch_op.drop_column('source')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('scope')
