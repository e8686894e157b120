"""station_events: a digest per event, so an event the station sends again is stored once

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("station_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_station_events_station_digest", ["station_id", "digest"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("station_events", schema=None) as batch_op:
        batch_op.drop_index("ix_station_events_station_digest")
        batch_op.drop_column("digest")
