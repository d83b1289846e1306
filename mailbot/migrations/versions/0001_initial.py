"""initial schema, the baseline: every table as create_all made it when migrations began

Every table of mailbot.models and mailbot.tables at that time, with their
indexes, unique constraints and foreign keys: what create_all made. A
database made before migrations with exactly these tables is recorded at
this revision by `mailbot db upgrade` (mailbot.schema.baseline_differences).

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counter",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name")
    )

    op.create_table(
        "folder_state",
        sa.Column("folder", sa.String(), nullable=False),
        sa.Column("uidvalidity", sa.Integer(), nullable=True),
        sa.Column("uidnext", sa.Integer(), nullable=True),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("folder")
    )

    op.create_table(
        "raw_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(), nullable=False),
        sa.Column("uidvalidity", sa.Integer(), nullable=False),
        sa.Column("uid", sa.Integer(), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("mail_class", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("sender", sa.String(), nullable=True),
        sa.Column("subject", sa.String(), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("moved", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("folder", "uidvalidity", "uid")
    )

    op.create_index("ix_raw_message_message_id", "raw_message", ["message_id"], unique=False)
    op.create_index("ix_raw_message_moved", "raw_message", ["moved"], unique=False)
    op.create_index("ix_raw_message_sha256", "raw_message", ["sha256"], unique=False)
    op.create_index("ix_raw_message_status", "raw_message", ["status"], unique=False)

    op.create_table(
        "application",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reception_number", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("company_name", sa.String(), nullable=True),
        sa.Column("corporate_number", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("contact_email", sa.String(), nullable=True),
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("hours_requested", sa.Integer(), nullable=True),
        sa.Column("seal", sa.JSON(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=True),
        sa.Column("problems", sa.JSON(), nullable=True),
        sa.Column("raw_message_id", sa.Integer(), nullable=True),
        sa.Column("thread_message_id", sa.String(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_uid", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["raw_message_id"], ["raw_message.id"]),
        sa.PrimaryKeyConstraint("id")
    )

    op.create_index("ix_application_queued_at", "application", ["queued_at"], unique=False)
    op.create_index("ix_application_reception_number", "application", ["reception_number"], unique=True)
    op.create_index("ix_application_state", "application", ["state"], unique=False)
    op.create_index("ix_application_thread_message_id", "application", ["thread_message_id"], unique=False)

    op.create_table(
        "consultation_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("program_year", sa.Integer(), nullable=False),
        sa.Column("company_name", sa.String(), nullable=True),
        sa.Column("company_key", sa.String(), nullable=True),
        sa.Column("corporate_number", sa.String(), nullable=True),
        sa.Column("contact_name", sa.String(), nullable=True),
        sa.Column("contact_email", sa.String(), nullable=True),
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=True),
        sa.Column("problems", sa.JSON(), nullable=True),
        sa.Column("raw_message_id", sa.Integer(), nullable=True),
        sa.Column("thread_message_id", sa.String(), nullable=True),
        sa.Column("message_ids", sa.JSON(), nullable=True),
        sa.Column("repeat_of", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["raw_message_id"], ["raw_message.id"]),
        sa.ForeignKeyConstraint(["repeat_of"], ["consultation_request.id"]),
        sa.PrimaryKeyConstraint("id")
    )

    op.create_index("ix_consultation_request_company_key", "consultation_request", ["company_key"], unique=False)
    op.create_index("ix_consultation_request_corporate_number", "consultation_request", ["corporate_number"], unique=False)
    op.create_index("ix_consultation_request_number", "consultation_request", ["number"], unique=True)
    op.create_index("ix_consultation_request_program_year", "consultation_request", ["program_year"], unique=False)
    op.create_index("ix_consultation_request_state", "consultation_request", ["state"], unique=False)

    op.create_table(
        "appointment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(), nullable=False),
        sa.Column("step", sa.String(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("consultation_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("place", sa.String(), nullable=True),
        sa.Column("url", sa.String(), nullable=True),
        sa.Column("expert", sa.String(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["application.id"]),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultation_request.id"]),
        sa.PrimaryKeyConstraint("id")
    )

    op.create_index("ix_appointment_application_id", "appointment", ["application_id"], unique=False)
    op.create_index("ix_appointment_consultation_id", "appointment", ["consultation_id"], unique=False)
    op.create_index("ix_appointment_state", "appointment", ["state"], unique=False)
    op.create_index("ix_appointment_step", "appointment", ["step"], unique=False)
    op.create_index("ix_appointment_uid", "appointment", ["uid"], unique=True)

    op.create_table(
        "hours_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["application.id"]),
        sa.PrimaryKeyConstraint("id")
    )

    op.create_index("ix_hours_session_application_id", "hours_session", ["application_id"], unique=False)

    op.create_table(
        "mail_language",
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("set_by", sa.String(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["application.id"]),
        sa.PrimaryKeyConstraint("application_id")
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("to_addrs", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("html", sa.String(), nullable=True),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("in_reply_to", sa.String(), nullable=True),
        sa.Column("references", sa.JSON(), nullable=True),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("raw_message_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["application_id"], ["application.id"]),
        sa.ForeignKeyConstraint(["raw_message_id"], ["raw_message.id"]),
        sa.PrimaryKeyConstraint("id")
    )

    op.create_index("ix_outbox_application_id", "outbox", ["application_id"], unique=False)
    op.create_index("ix_outbox_status", "outbox", ["status"], unique=False)

    op.create_table(
        "received_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("content_type", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw_message_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["application.id"]),
        sa.ForeignKeyConstraint(["raw_message_id"], ["raw_message.id"]),
        sa.PrimaryKeyConstraint("id")
    )

    op.create_index("ix_received_document_application_id", "received_document", ["application_id"], unique=False)
    op.create_index("ix_received_document_sha256", "received_document", ["sha256"], unique=False)

    op.create_table(
        "transition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raw_message_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["application_id"], ["application.id"]),
        sa.ForeignKeyConstraint(["raw_message_id"], ["raw_message.id"]),
        sa.PrimaryKeyConstraint("id")
    )

    op.create_index("ix_transition_application_id", "transition", ["application_id"], unique=False)

    op.create_table(
        "digest_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("needs_person", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fire_time")
    )

    op.create_index("ix_digest_run_period_end", "digest_run", ["period_end"], unique=False)

    op.create_table(
        "document_reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["application_id"], ["application.id"]),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("application_id", "requested_at")
    )

    op.create_index("ix_document_reminder_application_id", "document_reminder", ["application_id"], unique=False)

    op.create_table(
        "held_address",
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("raw_message_id", sa.Integer(), nullable=True),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"]),
        sa.ForeignKeyConstraint(["raw_message_id"], ["raw_message.id"]),
        sa.PrimaryKeyConstraint("address")
    )

    op.create_table(
        "outbox_attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("content_type", sa.String(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"]),
        sa.PrimaryKeyConstraint("id")
    )

    op.create_index("ix_outbox_attachment_outbox_id", "outbox_attachment", ["outbox_id"], unique=False)


def downgrade() -> None:
    op.drop_table("outbox_attachment")
    op.drop_table("held_address")
    op.drop_table("document_reminder")
    op.drop_table("digest_run")
    op.drop_table("transition")
    op.drop_table("received_document")
    op.drop_table("outbox")
    op.drop_table("mail_language")
    op.drop_table("hours_session")
    op.drop_table("appointment")
    op.drop_table("consultation_request")
    op.drop_table("application")
    op.drop_table("raw_message")
    op.drop_table("folder_state")
    op.drop_table("counter")
