"""escalation steps say why they were called off, and whom they reached

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 10:00:00.000000

`cancel_reason` records why a step was called off (its deadline ended, the case closed, its moment had passed,
the ladder changed); `audience` and `recipients` record, when a step fires, whom it was for and how many numbers
were on record for them (0: nobody could be texted).

Steps already in the database are filled in as far as their rows tell: a step called off after its deadline
ended says so; a fired step of the default ladder gets its audience, and its SMS count as its recipients (before
this revision a fired step wrote one text per number on record, so a count of 0 meant nobody had a number).
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# The default ladder's step names and their audiences (escalation/ladder.py); configured names stay unknown.
DEFAULT_AUDIENCES = {'warning': 'handler', 'supervisor': 'supervisor', 'leader': 'leader', 'office_reminder': 'office'}


def upgrade() -> None:
    with op.batch_alter_table('escalation_step', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancel_reason', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('audience', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('recipients', sa.Integer(), nullable=True))
    backfill()


def backfill() -> None:
    step = sa.table('escalation_step', sa.column('ticket_id', sa.Integer), sa.column('kind', sa.String),
                    sa.column('round', sa.Integer), sa.column('step', sa.String),
                    sa.column('fired_at', sa.DateTime), sa.column('cancelled_at', sa.DateTime),
                    sa.column('cancel_reason', sa.String), sa.column('sms_count', sa.Integer),
                    sa.column('audience', sa.String), sa.column('recipients', sa.Integer))
    deadline = sa.table('deadline', sa.column('ticket_id', sa.Integer), sa.column('kind', sa.String),
                        sa.column('round', sa.Integer), sa.column('ended_at', sa.DateTime))
    ended = sa.select(sa.literal(1)).where(
        deadline.c.ticket_id == step.c.ticket_id, deadline.c.kind == step.c.kind,
        deadline.c.round == step.c.round, deadline.c.ended_at.is_not(None)).exists()
    op.execute(step.update().where(step.c.cancelled_at.is_not(None), ended).values(cancel_reason='deadline_ended'))
    audience = sa.case(*((step.c.step == name, who) for name, who in DEFAULT_AUDIENCES.items()), else_=None)
    op.execute(step.update().where(step.c.fired_at.is_not(None), step.c.step.in_(DEFAULT_AUDIENCES))
               .values(audience=audience, recipients=step.c.sms_count))


def downgrade() -> None:
    with op.batch_alter_table('escalation_step', schema=None) as batch_op:
        batch_op.drop_column('recipients')
        batch_op.drop_column('audience')
        batch_op.drop_column('cancel_reason')
