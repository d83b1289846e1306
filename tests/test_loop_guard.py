"""The loop guard's count: automatic mails per address in a window (models.ReplyRecipient)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from mailbot import outbox
from mailbot.db import make_engine, transaction
from mailbot.models import OutboxMessage, ReplyRecipient, utcnow
from mailbot.replies import recent_replies


def queue(session: Session, to: list[str], *, automatic: bool = True, minutes_ago: int = 0) -> None:
    row = outbox.enqueue(session, kind="receipt", to=to, subject="受付", body="本文",
                         from_address="chizai@jetro.example.jp", automatic=automatic)
    row.created_at = utcnow() - timedelta(minutes=minutes_ago)


def test_the_count_is_per_address_case_blind_automatic_only_and_within_the_window(tmp_path):
    """GIVEN automatic mails to one address spelt two ways, one to two people, one staff-written
    mail, and one automatic mail older than the window
    WHEN the guard counts the last 180 minutes
    THEN each address counts its automatic mails of the window only, whatever the spelling."""
    engine = make_engine(f"sqlite:///{tmp_path}/guard.db")
    with transaction(engine) as session:
        queue(session, ["Robot@Example.jp"])
        queue(session, ["robot@example.jp", "tanaka@example.co.jp"], minutes_ago=170)
        queue(session, ["robot@example.jp"], automatic=False)  # written by staff: never a loop
        queue(session, ["ROBOT@example.jp"], minutes_ago=200)  # before the window
    with Session(engine) as session:
        counts = recent_replies(session, ["ROBOT@EXAMPLE.JP", "tanaka@example.co.jp", "other@example.jp"], 180)
        assert counts == {"robot@example.jp": 2, "tanaka@example.co.jp": 1}
        assert recent_replies(session, [], 180) == {}
        # One row per recipient of each automatic mail, written with the mail itself.
        assert len(session.exec(select(ReplyRecipient)).all()) == 4
        assert len(session.exec(select(OutboxMessage)).all()) == 4
