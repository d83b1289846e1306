"""letters.send: mail to an applicant outside any reply — recipients, thread, holds, files."""

from __future__ import annotations

from mailbot import letters
from mailbot.db import transaction
from mailbot.models import Application, HeldAddress
from mailbot.outbox import OutgoingFile, attachments_of
from tests.test_staff import make_services

APPLIED_FROM = "soumu@sample-seiki.co.jp"
CONTACT = "tanaka@sample-seiki.co.jp"


def application(session) -> Application:
    app = Application(reception_number="TS-2026-0007", state="adopted", company_name="株式会社サンプル精機",
                      contact_email=CONTACT, sender=APPLIED_FROM, fields={"contact_name": "田中 花子"},
                      thread_message_id="<apply-1@sample-seiki.co.jp>")
    session.add(app)
    session.flush()
    return app


def test_two_mails_go_to_contact_and_applicant_in_the_application_thread(tmp_path):
    services = make_services(tmp_path)
    files = [OutgoingFile("保有情報リスト.xlsx", "application/octet-stream", b"PK\x03\x04")]
    with transaction(services.engine) as session:
        app = application(session)
        first = letters.send(session, services, app, "receipt", position=3, attachments=files)
        session.flush()
        second = letters.send(session, services, app, "waitlisted", position=1)
        session.flush()
        assert [f.filename for f in attachments_of(session, first.id)] == ["保有情報リスト.xlsx"]
        assert attachments_of(session, second.id) == []
    assert first.to_addrs == [CONTACT, APPLIED_FROM]
    assert "TS-2026-0007" in first.subject and "田中 花子 様" in first.body and "株式会社サンプル精機" in first.body
    assert first.in_reply_to == "<apply-1@sample-seiki.co.jp>" and first.application_id == app.id
    assert second.in_reply_to == first.message_id
    assert second.references == ["<apply-1@sample-seiki.co.jp>", first.message_id]


def test_held_addresses_are_left_out_and_none_left_means_no_mail(tmp_path):
    services = make_services(tmp_path)
    with transaction(services.engine) as session:
        app = application(session)
        session.add(HeldAddress(address=CONTACT, reason="5.1.1"))
        session.flush()
        only_applicant = letters.send(session, services, app, "receipt", position=1)
        session.add(HeldAddress(address=APPLIED_FROM, reason="5.1.1"))
        session.flush()
        nobody = letters.send(session, services, app, "receipt", position=1)
    assert only_applicant.to_addrs == [APPLIED_FROM] and nobody is None
