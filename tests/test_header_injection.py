"""No applicant text reaches a mail header unescaped (issue 5, item 7): a property test.

Whatever a company writes (its name, its contact's name, the subject, display
name, Message-ID and References of its mail) and whatever a reception number
looks like, the mail that replies.send or letters.send queues, as
outbox.build_email writes it, has exactly the expected header fields, one
From/To/Subject, no recipient it should not have, and parses back cleanly
with the standard library's strict policy. The inputs carry CR, LF, NEL,
U+2028, NUL, "Bcc: x@y" and RFC 2047 encoded words that decode to a line
break (the way Python 3.11's header parser was tricked, CVE-2024-6923).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from mailbot import language, letters, replies
from mailbot.intake import mime
from mailbot.intake.message import InboundMessage
from mailbot.models import Application, OutboxMessage, RawMessage
from mailbot.outbox import build_email
from mailbot.pipeline import Handling
from mailbot.render import one_line
from tests.test_staff import FROM, make_services


def encoded_word(text: str, encoding: str = "b") -> str:
    """``text`` as an RFC 2047 encoded word, the way a mailer hides a line break in a header."""
    if encoding == "b":
        return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="
    quoted = "".join(c if c.isalnum() else "".join(f"={b:02X}" for b in c.encode()) for c in text)
    return f"=?UTF-8?Q?{quoted}?="


TRICKS = [
    "\r\n", "\r", "\n", "\x85", "\u2028", "\u2029", "\x00", "\x0b", "\x0c", "\t", " ",
    "Bcc: evil@attacker.example", "\r\nBcc: evil@attacker.example", "\nTo: evil@attacker.example\n",
    encoded_word("x\r\nBcc: evil@attacker.example"), encoded_word("\r\nCc: evil@attacker.example", "q"),
    "=?", "?=", "=?utf-8?b?", "<a@b>", ",", ";", '"', "株式会社", "㈱", "ＴＳ－２０２６", "TS-2026-0001",
]
hostile = st.lists(st.one_of(st.sampled_from(TRICKS), st.text(max_size=8)), max_size=8).map("".join)
number_like = st.one_of(st.from_regex(r"\ATS-20[0-9]{2}-[0-9]{4}\Z"), hostile.map(lambda t: f"TS-2026-{t}"))
good_address = st.sampled_from(["tanaka@sample-seiki.example.jp", "Soumu@Sample-Seiki.example.jp",
                                "info+apply@example.co.jp"])  # GOOD below, lower-cased
any_address = st.one_of(good_address, hostile.map(lambda t: f"{t}@example.jp"), hostile)

#: Header fields a reply carries; In-Reply-To and References only when there is something to answer.
BASE = {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}
THREAD = {"In-Reply-To", "References"}
AUTOMATIC = {"Auto-Submitted", "X-Auto-Response-Suppress", "X-Loop"}


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    return make_services(tmp_path_factory.mktemp("injection"))


def stored(session: Session, raw: bytes = b"x") -> RawMessage:
    row = RawMessage(folder="INBOX", uidvalidity=1, uid=abs(hash(raw)) % 10**9, size=len(raw),
                     arrived_at=datetime.now(UTC), sha256=hashlib.sha256(raw).hexdigest(), raw=raw)
    session.add(row)
    session.flush()
    return row


def application(session, *, number, company, contact, contact_email, sender, lang) -> Application:
    row = Application(reception_number=number, state="queued", company_name=company, contact_email=contact_email,
                      sender=sender, fields={"contact_name": contact}, thread_message_id="<apply@example.jp>")
    session.add(row)
    session.flush()
    language.choose(session, row, lang, by="test")
    return row


GOOD = {"tanaka@sample-seiki.example.jp", "soumu@sample-seiki.example.jp", "info+apply@example.co.jp"}


def assert_recipients(message, *given: str) -> None:
    """To: holds only addresses the applicant gave, each once, and every well-formed one of them."""
    to = [a.addr_spec for a in message["To"].addresses]
    assert set(to) <= set(given) and len({a.lower() for a in to}) == len(to), (to, given)
    assert {a.lower() for a in given if a.lower() in GOOD} <= {a.lower() for a in to}


def parsed(services, row: OutboxMessage):
    raw = build_email(row, services.settings.smtp).as_bytes()
    return message_from_bytes(raw, policy=policy.default)


def assert_clean(message, row: OutboxMessage, *, answers: str | None) -> None:
    """Exactly the expected fields, each once, recipients as queued, no parse defects.

    ``answers``: the Message-ID the mail answers, as the applicant's text gave it (None: none).
    """
    names = Counter(message.keys())
    required = BASE | (AUTOMATIC if row.automatic else set())
    assert required <= set(names) <= required | THREAD and set(names.values()) == {1}, names
    # Threading carries only real msg-ids, byte for byte; whatever else the applicant's mail had is left out.
    ids = re.findall(r"<[\x21-\x3b\x3d\x3f-\x7e]+>", answers or "")
    assert message["In-Reply-To"] == (ids[0] if ids else None)
    assert all(re.fullmatch(r"<[\x21-\x3b\x3d\x3f-\x7e]+>", ref) for ref in str(message["References"] or "").split())
    assert [a.addr_spec for a in message["To"].addresses] == row.to_addrs
    assert [a.addr_spec for a in message["From"].addresses] == [FROM]
    assert one_line(row.subject) == row.subject  # one line as queued, and back as queued (up to spacing)
    assert "".join(str(message["Subject"]).split()) == "".join(row.subject.split())
    assert message.defects == [] and all(not message[name].defects for name in names)
    assert message.get_body(("plain",)).get_content()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=number_like, company=hostile, contact=hostile, subject=hostile, sender_name=hostile,
       message_id=st.one_of(st.none(), hostile), references=st.lists(hostile, max_size=3),
       sender=good_address, contact_email=any_address, lang=st.sampled_from(["ja", "en"]))
def test_a_reply_carries_no_applicant_header(services, number, company, contact, subject, sender_name,
                                             message_id, references, sender, contact_email, lang):
    msg = InboundMessage(message_id=message_id, sender=sender, sender_name=sender_name, to=(FROM,), cc=(),
                         subject=subject, text="", attachments=(), in_reply_to=None, references=tuple(references))
    with Session(services.engine) as session:  # never committed: each example starts afresh
        app = application(session, number=number, company=company, contact=contact,
                          contact_email=contact_email, sender=sender, lang=lang)
        handling = Handling(services=services, session=session, raw=stored(session), msg=msg)
        replies.send(handling, "receipt", app=app, position=1)
        session.flush()
        row = session.exec(select(OutboxMessage)).one()
        session.expunge(row)
        session.rollback()
    message = parsed(services, row)
    assert_recipients(message, sender, contact_email)
    assert one_line(number) in row.subject
    assert_clean(message, row, answers=message_id)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=number_like, company=hostile, contact=hostile, thread_id=hostile,
       sender=st.one_of(good_address, hostile), contact_email=any_address, lang=st.sampled_from(["ja", "en"]))
def test_a_letter_carries_no_applicant_header(services, number, company, contact, thread_id, sender,
                                              contact_email, lang):
    with Session(services.engine) as session:
        app = application(session, number=number, company=company, contact=contact,
                          contact_email=contact_email, sender=sender, lang=lang)
        app.thread_message_id = thread_id or None
        row = letters.send(session, services, app, "waitlisted", position=2)
        if row is not None:
            session.expunge(row)
        session.rollback()
    if row is None:  # nobody it could safely be written to: nothing queued
        assert not {contact_email.lower(), sender.lower()} & GOOD
        return
    message = parsed(services, row)
    assert_recipients(message, contact_email, sender)
    assert one_line(number) in row.subject and not row.automatic
    assert_clean(message, row, answers=thread_id)


def test_an_encoded_line_break_in_the_inbound_headers_adds_no_header(services):
    """GIVEN a mail whose Message-ID, References and From name are encoded words hiding "\\r\\nBcc: …"
    WHEN it is parsed as the pipeline parses it and answered
    THEN the reply has no Bcc or Cc and goes to the sender alone."""
    trap = encoded_word("x\r\nBcc: evil@attacker.example")
    raw = (f"From: {trap} <tanaka@sample-seiki.example.jp>\r\nTo: {FROM}\r\n"
           f"Subject: {encoded_word('申請書' + chr(13) + chr(10) + 'Bcc: evil@attacker.example')}\r\n"
           f"Message-ID: {trap}\r\nReferences: <a@example.jp> {trap}\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n").encode()
    msg = mime.parse(raw)
    with Session(services.engine) as session:
        handling = Handling(services=services, session=session, raw=stored(session, raw), msg=msg)
        replies.send(handling, "pdf_unreadable", reason="PDFではありません。")
        session.flush()
        row = session.exec(select(OutboxMessage)).one()
        session.expunge(row)
        session.rollback()
    message = parsed(services, row)
    assert "Bcc" not in message and "Cc" not in message
    assert [a.addr_spec for a in message["To"].addresses] == ["tanaka@sample-seiki.example.jp"]
    assert "In-Reply-To" not in message  # an encoded word is no Message-ID: nothing to thread on
    assert str(message["References"]) == "<a@example.jp>"
    assert_clean(message, row, answers=None)
