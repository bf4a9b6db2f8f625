"""Files on the volume (ATTACHMENT_STORAGE=directory) encrypted at rest, each with a key of its own kept in the database

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 12:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Files written before stay readable in clear (tickets/storage.py); moving them into the database and back
    # (`flask attachments move --to database`, then `--to directory`) encrypts them.
    op.create_table('attachment_file_key',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('file_key', sa.String(length=512), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_attachment_file_key'))
    )


def downgrade() -> None:
    # The schema before this revision reads files in clear only: downgrading with encrypted files on the volume would
    # leave them unreadable. Move them into the database first (`flask attachments move --to database`).
    bind = op.get_bind()
    kept = bind.execute(sa.text("SELECT count(*) FROM attachment_file_key")).scalar()
    if kept:
        raise RuntimeError(f"{kept} files on the volume are encrypted with keys this downgrade would drop: run "
                           "`flask attachments move --to database` first")
    op.drop_table('attachment_file_key')
