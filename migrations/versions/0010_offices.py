"""offices: a city's network of windows in one deployment

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 21:30:00.000000

A tree of offices (city, county, township windows). Today's data moves into one root office named after
`OFFICE_NAME` (code `root`): every department, every office/supervisor/leader account, every ticket and every
kept report belongs to it, so a single-window database upgrades with nothing lost and behaves as before.
Also: the dispatch catalogue (派单目录), the 争议件 marks on a ticket, deadline policies per office, and
kept reports per (office, month).
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

DEFAULT_NAME = "办不成事反映窗口"


def _root_name() -> str:
    try:
        from flask import current_app

        return current_app.config.get("OFFICE_NAME") or DEFAULT_NAME
    except RuntimeError:  # outside an app (a bare alembic run)
        return DEFAULT_NAME


def upgrade() -> None:
    office = op.create_table('office',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('area_code', sa.String(length=12), nullable=True),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['office.id'], name=op.f('fk_office_parent_id_office')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_office')),
    sa.UniqueConstraint('code', name=op.f('uq_office_code'))
    )
    op.create_index(op.f('ix_office_parent_id'), 'office', ['parent_id'], unique=False)
    op.create_index(op.f('ix_office_path'), 'office', ['path'], unique=False)
    op.bulk_insert(office, [{"id": 1, "code": "root", "name": _root_name(), "level": "city", "parent_id": None,
                             "area_code": None, "path": "1/", "active": True,
                             "created_at": datetime.now(timezone.utc)}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SELECT setval(pg_get_serial_sequence('office', 'id'), 1)")

    with op.batch_alter_table('department', schema=None) as batch_op:
        batch_op.add_column(sa.Column('office_id', sa.Integer(), nullable=True))
    op.execute("UPDATE department SET office_id = 1")
    with op.batch_alter_table('department', schema=None) as batch_op:
        batch_op.alter_column('office_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(batch_op.f('ix_department_office_id'), ['office_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_department_office_id_office'), 'office', ['office_id'], ['id'])

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('office_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_user_account_office_id'), ['office_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_user_account_office_id_office'), 'office', ['office_id'], ['id'])
    op.execute("UPDATE user_account SET office_id = 1 WHERE role IN ('office', 'supervisor', 'leader')")

    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('office_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('disputed', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('arbitrated_department_id', sa.Integer(), nullable=True))
    op.execute("UPDATE ticket SET office_id = 1")
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.alter_column('office_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('disputed', existing_type=sa.Boolean(), server_default=None)
        batch_op.create_foreign_key(batch_op.f('fk_ticket_office_id_office'), 'office', ['office_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_ticket_arbitrated_department_id_department'), 'department',
                                    ['arbitrated_department_id'], ['id'])
        batch_op.create_index('ix_ticket_office_created', ['office_id', 'created_at', 'id'], unique=False)

    op.create_table('dispatch_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=100), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_dispatch_rule_department_id_department')),
    sa.ForeignKeyConstraint(['office_id'], ['office.id'], name=op.f('fk_dispatch_rule_office_id_office')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_rule')),
    sa.UniqueConstraint('office_id', 'scope', 'value', name='uq_dispatch_rule_scope')
    )
    op.create_index(op.f('ix_dispatch_rule_department_id'), 'dispatch_rule', ['department_id'], unique=False)

    with op.batch_alter_table('deadline_policy', schema=None) as batch_op:
        batch_op.add_column(sa.Column('office_id', sa.Integer(), nullable=True))
        batch_op.drop_constraint('uq_deadline_policy_scope', type_='unique')
        batch_op.drop_constraint(op.f('ck_deadline_policy_one_scope'), type_='check')
        batch_op.create_foreign_key(batch_op.f('fk_deadline_policy_office_id_office'), 'office', ['office_id'], ['id'])
        batch_op.create_unique_constraint('uq_deadline_policy_scope',
                                          ['kind', 'problem_type', 'department_id', 'office_id'])
        batch_op.create_check_constraint(
            op.f('ck_deadline_policy_one_scope'),
            "(CASE WHEN problem_type IS NULL THEN 0 ELSE 1 END) + (CASE WHEN department_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN office_id IS NULL THEN 0 ELSE 1 END) = 1")

    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.add_column(sa.Column('office_id', sa.Integer(), nullable=True))
    op.execute("UPDATE report SET office_id = 1")
    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.alter_column('office_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint(op.f('uq_report_month'), type_='unique')
        batch_op.create_foreign_key(batch_op.f('fk_report_office_id_office'), 'office', ['office_id'], ['id'])
        batch_op.create_unique_constraint('uq_report_office_month', ['office_id', 'month'])


def downgrade() -> None:
    """Back to one window: only the root office's data can be kept as it was."""
    op.execute("DELETE FROM report WHERE office_id <> 1")
    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.drop_constraint('uq_report_office_month', type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_report_office_id_office'), type_='foreignkey')
        batch_op.create_unique_constraint(batch_op.f('uq_report_month'), ['month'])
        batch_op.drop_column('office_id')
    op.execute("DELETE FROM deadline_policy WHERE office_id IS NOT NULL")
    with op.batch_alter_table('deadline_policy', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_deadline_policy_one_scope'), type_='check')
        batch_op.drop_constraint('uq_deadline_policy_scope', type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_deadline_policy_office_id_office'), type_='foreignkey')
        batch_op.drop_column('office_id')
        batch_op.create_unique_constraint('uq_deadline_policy_scope', ['kind', 'problem_type', 'department_id'])
        batch_op.create_check_constraint(op.f('ck_deadline_policy_one_scope'), '(problem_type IS NULL) <> (department_id IS NULL)')
    op.drop_index(op.f('ix_dispatch_rule_department_id'), table_name='dispatch_rule')
    op.drop_table('dispatch_rule')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_office_created')
        batch_op.drop_constraint(batch_op.f('fk_ticket_arbitrated_department_id_department'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_ticket_office_id_office'), type_='foreignkey')
        batch_op.drop_column('arbitrated_department_id')
        batch_op.drop_column('disputed')
        batch_op.drop_column('office_id')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_user_account_office_id_office'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_user_account_office_id'))
        batch_op.drop_column('office_id')
    with op.batch_alter_table('department', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_department_office_id_office'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_department_office_id'))
        batch_op.drop_column('office_id')
    op.drop_index(op.f('ix_office_path'), table_name='office')
    op.drop_index(op.f('ix_office_parent_id'), table_name='office')
    op.drop_table('office')
