"""Personal information (PIPL): the access log, encryption at rest with blind indexes, and retention

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 04:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- the access log ---
    op.create_table('access_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('count', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_access_log_ticket_id_ticket')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_access_log_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_log'))
    )
    op.create_index('ix_access_log_at', 'access_log', ['at', 'id'], unique=False)
    op.create_index('ix_access_log_ticket', 'access_log', ['ticket_id', 'at'], unique=False)
    op.create_index('ix_access_log_user', 'access_log', ['user_id', 'at'], unique=False)
    # --- encryption at rest ---
    # Citizens' names and numbers are stored encrypted (longer text) and found by blind indexes. Rows written before
    # stay in clear until `flask privacy rotate-key` encrypts and indexes them.
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.alter_column('citizen_name', existing_type=sa.String(length=50), type_=sa.String(length=512),
                              existing_nullable=False)
        batch_op.alter_column('phone', existing_type=sa.String(length=20), type_=sa.String(length=512),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('phone_index', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('name_index', sa.String(length=64), nullable=True))
        batch_op.drop_index('ix_ticket_phone_created')
        batch_op.create_index('ix_ticket_phone_index_created', ['phone_index', 'created_at'], unique=False)
        batch_op.create_index('ix_ticket_name_index', ['name_index'], unique=False)
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.alter_column('phone', existing_type=sa.String(length=20), type_=sa.String(length=512),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('phone_index', sa.String(length=64), nullable=True))
        batch_op.drop_index(batch_op.f('ix_survey_phone'))
        batch_op.create_index(batch_op.f('ix_survey_phone_index'), ['phone_index'], unique=False)
    with op.batch_alter_table('sms_message', schema=None) as batch_op:
        batch_op.alter_column('phone', existing_type=sa.String(length=20), type_=sa.String(length=512),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('phone_index', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_sms_message_phone_index'), ['phone_index'], unique=False)
    with op.batch_alter_table('sms_inbound', schema=None) as batch_op:
        batch_op.alter_column('phone', existing_type=sa.String(length=20), type_=sa.String(length=512),
                              existing_nullable=False)
        batch_op.drop_index(batch_op.f('ix_sms_inbound_phone'))
    with op.batch_alter_table('sms_opt_out', schema=None) as batch_op:
        batch_op.alter_column('phone', existing_type=sa.String(length=20), type_=sa.String(length=64),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('number', sa.String(length=512), nullable=True))
    # --- retention ---
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('anonymised_at', sa.DateTime(timezone=True), nullable=True))
    # the cases not yet anonymised, by their last change (tickets.models.ended_before): the retention's selection
    op.create_index('ix_ticket_retention', 'ticket', ['updated_at', 'id'], unique=False,
                    postgresql_where=sa.text('anonymised_at IS NULL'), sqlite_where=sa.text('anonymised_at IS NULL'))


def downgrade() -> None:
    # --- retention ---
    op.drop_index('ix_ticket_retention', table_name='ticket')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('anonymised_at')
    # --- encryption at rest ---
    # The schema before reads clear text only: every value is decrypted first, with the app's keys (PRIVACY_KEYS).
    from flask import current_app

    from tickets.privacy import crypto, rotation

    rotation.decrypt_all(op.get_bind(), crypto.ring(current_app))
    with op.batch_alter_table('sms_opt_out', schema=None) as batch_op:
        batch_op.drop_column('number')
        batch_op.alter_column('phone', existing_type=sa.String(length=64), type_=sa.String(length=20),
                              existing_nullable=False)
    with op.batch_alter_table('sms_inbound', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_inbound_phone'), ['phone'], unique=False)
        batch_op.alter_column('phone', existing_type=sa.String(length=512), type_=sa.String(length=20),
                              existing_nullable=False)
    with op.batch_alter_table('sms_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_message_phone_index'))
        batch_op.drop_column('phone_index')
        batch_op.alter_column('phone', existing_type=sa.String(length=512), type_=sa.String(length=20),
                              existing_nullable=False)
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_phone_index'))
        batch_op.create_index(batch_op.f('ix_survey_phone'), ['phone'], unique=False)
        batch_op.drop_column('phone_index')
        batch_op.alter_column('phone', existing_type=sa.String(length=512), type_=sa.String(length=20),
                              existing_nullable=False)
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_name_index')
        batch_op.drop_index('ix_ticket_phone_index_created')
        batch_op.create_index('ix_ticket_phone_created', ['phone', 'created_at'], unique=False)
        batch_op.drop_column('name_index')
        batch_op.drop_column('phone_index')
        batch_op.alter_column('phone', existing_type=sa.String(length=512), type_=sa.String(length=20),
                              existing_nullable=False)
        batch_op.alter_column('citizen_name', existing_type=sa.String(length=512), type_=sa.String(length=50),
                              existing_nullable=False)
    # --- the access log ---
    op.drop_index('ix_access_log_user', table_name='access_log')
    op.drop_index('ix_access_log_ticket', table_name='access_log')
    op.drop_index('ix_access_log_at', table_name='access_log')
    op.drop_table('access_log')
