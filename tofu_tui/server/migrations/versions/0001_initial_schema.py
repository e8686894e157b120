"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tofu_tui.server.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "attachments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner_station_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachments_run_id"), ["run_id"], unique=False)

    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "procedures",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("identifier", sa.String(length=200), nullable=False),
        sa.Column("created_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_key_id", sa.String(length=36), nullable=True),
        sa.Column("repo_url", sa.Text(), nullable=True),
        sa.Column("repo_branch", sa.String(length=255), nullable=True),
        sa.Column("repo_path", sa.Text(), nullable=True),
        sa.Column("active_deployment_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identifier"),
    )
    op.create_table(
        "stations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("created_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("installation_id", sa.String(length=36), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("os", sa.String(length=100), nullable=True),
        sa.Column("platform", sa.String(length=100), nullable=True),
        sa.Column("mac_address", sa.String(length=64), nullable=True),
        sa.Column("cli_version", sa.String(length=64), nullable=True),
        sa.Column("last_seen_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_heartbeat", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stations_name"), ["name"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("station_id", sa.String(length=36), nullable=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_station_id"), ["station_id"], unique=False)

    op.create_table(
        "commands",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("station_id", sa.String(length=36), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.id"],
        ),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commands_station_id"), ["station_id"], unique=False)

    op.create_table(
        "deployments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("procedure_id", sa.String(length=36), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("ref", sa.String(length=255), nullable=True),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("committed_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("repo_url", sa.Text(), nullable=False),
        sa.Column("repo_path", sa.Text(), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("created_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["procedures.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deployments_procedure_id"), ["procedure_id"], unique=False
        )

    op.create_table(
        "presence",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("presence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_presence_station_id"), ["station_id"], unique=False)

    op.create_table(
        "runs",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("procedure_id", sa.String(length=36), nullable=False),
        sa.Column("station_id", sa.String(length=36), nullable=True),
        sa.Column("created_by_key_id", sa.String(length=36), nullable=True),
        sa.Column("client_run_ref", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("serial_number", sa.String(length=255), nullable=False),
        sa.Column("part_number", sa.String(length=255), nullable=True),
        sa.Column("revision_number", sa.String(length=255), nullable=True),
        sa.Column("batch_number", sa.String(length=255), nullable=True),
        sa.Column("procedure_version", sa.String(length=255), nullable=True),
        sa.Column("deployment_id", sa.String(length=36), nullable=True),
        sa.Column("execution_id", sa.String(length=255), nullable=True),
        sa.Column("slot_key", sa.String(length=255), nullable=True),
        sa.Column("slot_name", sa.String(length=255), nullable=True),
        sa.Column("started_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["procedures.id"],
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.id"],
        ),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("client_run_ref"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runs_procedure_started", ["procedure_id", "started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_runs_serial_number"), ["serial_number"], unique=False)
        batch_op.create_index("ix_runs_started", ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_station_id"), ["station_id"], unique=False)

    op.create_table(
        "setup_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("station_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("setup_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_setup_tokens_station_id"), ["station_id"], unique=False
        )

    op.create_table(
        "station_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(length=36), nullable=False),
        sa.Column("received_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("station_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_station_events_station_id"), ["station_id"], unique=False
        )

    op.create_table(
        "station_procedures",
        sa.Column("station_id", sa.String(length=36), nullable=False),
        sa.Column("procedure_id", sa.String(length=36), nullable=False),
        sa.Column("linked_at", tofu_tui.server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["procedures.id"],
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.id"],
        ),
        sa.PrimaryKeyConstraint("station_id", "procedure_id"),
    )


def downgrade() -> None:

    op.drop_table("station_procedures")
    with op.batch_alter_table("station_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_station_events_station_id"))

    op.drop_table("station_events")
    with op.batch_alter_table("setup_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_setup_tokens_station_id"))

    op.drop_table("setup_tokens")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_station_id"))
        batch_op.drop_index("ix_runs_started")
        batch_op.drop_index(batch_op.f("ix_runs_serial_number"))
        batch_op.drop_index("ix_runs_procedure_started")

    op.drop_table("runs")
    with op.batch_alter_table("presence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_presence_station_id"))

    op.drop_table("presence")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_procedure_id"))

    op.drop_table("deployments")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commands_station_id"))

    op.drop_table("commands")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_station_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stations_name"))

    op.drop_table("stations")
    op.drop_table("procedures")
    op.drop_table("meta")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_run_id"))

    op.drop_table("attachments")
