"""poller against a real Dovecot: the cheap poll (UIDNEXT), crash safety, UIDVALIDITY resets."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from imapclient import IMAPClient
from sqlmodel import Session, select

from mailbot import PROJECT_ROOT, config
from mailbot.errors import ImapError
from mailbot.intake import poller
from mailbot.intake.imap import Mailbox
from mailbot.models import FolderState, RawMessage
from mailbot.services import build
from tests.dovecot import append


def question(n: int, message_id: str | None = None) -> bytes:
    """A plain question from a company (no PDF: processing is quick and answers nothing here)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"sato{n}@example.co.jp"
    msg["To"] = "chizai@example.jp"
    msg["Subject"] = f"質問 {n}"
    msg["Message-ID"] = message_id or f"<q{n}@example.co.jp>"
    msg.set_content(f"申請について質問です。{n}\n")
    return msg.as_bytes()


@pytest.fixture
def services(imap_settings, tmp_path):
    today = date.today()
    data = {
        "imap": imap_settings.model_dump(),
        "smtp": {"host": "127.0.0.1", "port": 9, "security": "none", "from_address": "chizai@example.jp"},
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
        "program": {"opens": today - timedelta(days=1), "closes": today + timedelta(days=30)},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"),
                    "templates_dir": str(PROJECT_ROOT / "templates")},
    }
    return build(config.validate(data, base_dir=tmp_path, origin="test"))


@pytest.fixture
def commands(monkeypatch) -> Counter:
    """Counts the SELECT, SEARCH and FETCH commands every IMAPClient sends (they still run)."""
    counted: Counter = Counter()
    for name in ("select_folder", "search", "fetch"):
        real = getattr(IMAPClient, name)

        def spy(self, *args, _real=real, _name=name, **kwargs):
            counted[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(IMAPClient, name, spy)
    return counted


def rows(services) -> list[RawMessage]:
    with Session(services.engine) as session:
        return list(session.exec(select(RawMessage).order_by(RawMessage.uid)).all())


def stored_uidnext(services) -> int | None:
    with Session(services.engine) as session:
        state = session.get(FolderState, services.settings.imap.folder)
    return None if state is None else state.uidnext


def test_an_unchanged_folder_is_polled_without_search_or_fetch(services, imap_settings, commands):
    for n in range(3):
        append(imap_settings, question(n))
    with Mailbox(imap_settings) as box:
        assert poller.poll(services, box).stored == 3
        commands.clear()
        again = poller.poll(services, box)
    assert (again.stored, again.processed, again.moved) == (0, 0, 0)
    assert commands == Counter()  # NOOP + STATUS said it all: no SELECT, SEARCH or FETCH


def test_new_mail_on_a_kept_connection_is_seen_without_selecting_again(services, imap_settings, commands):
    append(imap_settings, question(1))
    with Mailbox(imap_settings) as box:
        poller.poll(services, box)
        append(imap_settings, question(2))
        commands.clear()
        assert poller.poll(services, box).stored == 1
    assert commands["select_folder"] == 0 and commands["search"] == 1


def test_only_uids_from_the_stored_uidnext_are_searched(services, imap_settings, commands):
    append(imap_settings, question(1))
    poller.poll(services)
    uidnext = stored_uidnext(services)
    new_uid = append(imap_settings, question(2))
    assert new_uid == uidnext
    with Mailbox(imap_settings) as box:
        box.select()
        assert box.uids(uidnext) == [new_uid]
        # "UID n:*" matches the last message even above every UID: it must be filtered out.
        assert box.uids(new_uid + 5) == []
    assert poller.poll(services).stored == 1
    assert [r.uid for r in rows(services)] == [new_uid - 1, new_uid]


def test_a_reused_connection_checks_the_folders_once(services, imap_settings, monkeypatch):
    created = Counter()
    real = IMAPClient.folder_exists
    monkeypatch.setattr(IMAPClient, "folder_exists",
                        lambda self, name: created.update([name]) or real(self, name))
    with Mailbox(imap_settings) as box:
        for _ in range(3):
            poller.poll(services, box)
    assert created == Counter({"mailbot/processed": 1, "mailbot/quarantine": 1})


def test_a_crash_mid_store_loses_nothing_and_stores_nothing_twice(services, imap_settings, monkeypatch):
    """GIVEN three new mails and a connection that dies after the first is stored
    WHEN the next poll runs
    THEN all three are stored once each, and UIDNEXT moved only then."""
    uids = [append(imap_settings, question(n)) for n in range(3)]
    real_store = poller._store
    calls = []

    def dying_store(services_, folder, mail, *renumbered):
        real_store(services_, folder, mail, *renumbered)
        calls.append(mail.uid)
        if len(calls) == 1:
            raise ImapError("connection reset by peer (test)")

    monkeypatch.setattr(poller, "_store", dying_store)
    with pytest.raises(ImapError):
        poller.poll(services)
    assert stored_uidnext(services) is None
    assert [r.uid for r in rows(services)] == uids[:1]
    monkeypatch.setattr(poller, "_store", real_store)
    assert poller.poll(services).stored == 2
    assert [r.uid for r in rows(services)] == uids
    assert stored_uidnext(services) == uids[-1] + 1


def recreate(settings, folder: str) -> None:
    """DELETE and CREATE a folder: the server gives it a new UIDVALIDITY (as after a migration)."""
    with IMAPClient(settings.host, port=settings.port, ssl=False, timeout=10) as client:
        client.login(settings.username, settings.password)
        client.delete_folder(folder)
        client.create_folder(folder)


def make_folder(settings, folder: str) -> None:
    with IMAPClient(settings.host, port=settings.port, ssl=False, timeout=10) as client:
        client.login(settings.username, settings.password)
        client.create_folder(folder)


def with_header(raw: bytes, header: bytes) -> bytes:
    return header + b"\r\n" + raw


def test_a_renumbered_folder_with_rewritten_headers_is_recorded_as_duplicate(services, imap_settings):
    """GIVEN a mail stored, then its folder recreated (new UIDVALIDITY) and the mail re-added
    with a Received header the migration wrote
    WHEN polled
    THEN the copy is recorded as duplicate of the first, not as new mail."""
    folder = "applications"
    make_folder(imap_settings, folder)
    settings = services.settings.model_copy(
        update={"imap": services.settings.imap.model_copy(update={"folder": folder})})
    services.settings = settings
    mail = question(1)
    append(settings.imap, mail)
    poller.store_new(services, *_selected(settings.imap))
    recreate(imap_settings, folder)
    append(settings.imap, with_header(mail, b"Received: from old-server by new-server; migrated"))
    append(settings.imap, question(2))
    box, uidvalidity = _selected(settings.imap)
    assert poller.store_new(services, box, uidvalidity) == 2
    first, copy, other = sorted(rows(services), key=lambda r: r.id)
    assert first.uidvalidity != copy.uidvalidity == other.uidvalidity
    assert (copy.status, other.status) == ("duplicate", "new")
    assert f"stored message {first.id}" in copy.reason and copy.sha256 != first.sha256


def test_same_message_id_with_another_body_is_not_a_duplicate(services, imap_settings):
    """A mailer that reuses Message-IDs (it happens) must not make us drop a different mail."""
    folder = "applications"
    make_folder(imap_settings, folder)
    services.settings = services.settings.model_copy(
        update={"imap": services.settings.imap.model_copy(update={"folder": folder})})
    append(services.settings.imap, question(1, message_id="<same@example.co.jp>"))
    poller.store_new(services, *_selected(services.settings.imap))
    recreate(imap_settings, folder)
    append(services.settings.imap, question(2, message_id="<same@example.co.jp>"))
    poller.store_new(services, *_selected(services.settings.imap))
    assert [r.status for r in rows(services)] == ["new", "new"]


def _selected(settings) -> tuple[Mailbox, int]:
    box = Mailbox(settings)
    box.open()
    return box, box.select()


def test_header_message_id_and_body_digest():
    raw = b"Message-ID:  <a.b@example.jp> (comment)\r\nSubject: x\r\n\r\nbody\r\nline\r\n"
    assert poller.header_message_id(raw) == "<a.b@example.jp>"
    assert poller.header_message_id(b"Subject: x\r\n\r\nbody") is None
    assert poller.body_digest(raw) == poller.body_digest(b"X-New: 1\nSubject: y\n\nbody\nline\n")
    assert poller.body_digest(raw) != poller.body_digest(b"Subject: x\r\n\r\nbody\r\n")


def test_a_listed_mail_the_server_did_not_hand_over_is_asked_for_again(services, imap_settings, monkeypatch):
    """GIVEN a FETCH that leaves out one listed UID (a server hiccup)
    WHEN the next poll runs
    THEN UIDNEXT has not moved past it, and it is stored then."""
    uids = [append(imap_settings, question(n)) for n in range(2)]
    real_fetch = Mailbox.fetch
    monkeypatch.setattr(Mailbox, "fetch", lambda self, wanted: (
        mail for mail in real_fetch(self, wanted) if mail.uid != uids[-1]))
    assert poller.poll(services).stored == 1
    assert stored_uidnext(services) is None
    monkeypatch.setattr(Mailbox, "fetch", real_fetch)
    assert poller.poll(services).stored == 1
    assert [r.uid for r in rows(services)] == uids and stored_uidnext(services) == uids[-1] + 1


@pytest.mark.sqlite_only(reason="reads SQLite's EXPLAIN QUERY PLAN")
def test_unmoved_mail_is_found_through_an_index_not_by_reading_history(services, imap_settings):
    from sqlalchemy import text

    poller.poll(services)
    query = poller.unmoved("INBOX", 1).compile(services.engine, compile_kwargs={"literal_binds": True})
    with services.engine.connect() as connection:
        plan = connection.execute(text(f"EXPLAIN QUERY PLAN {query}")).all()
    assert any("ix_raw_message_moved" in str(row) for row in plan), plan


def test_a_stop_asked_for_ends_the_poll_after_the_message_in_hand(services, imap_settings):
    """GIVEN three new mails WHEN the service is asked to stop while the first is processed
    THEN the poll processes (and moves) only that one; the next poll processes the other two,
    each once."""
    from mailbot.intake.poller import poll

    for n in range(3):
        append(imap_settings, question(n))
    statuses = lambda: [r.status for r in rows(services)]  # noqa: E731
    stopping = poll(services, stop=lambda: "processed" in statuses())
    assert (stopping.stored, stopping.processed, stopping.moved) == (3, 1, 1)
    assert statuses() == ["processed", "new", "new"]
    rest = poll(services)
    assert (rest.stored, rest.processed, rest.moved) == (0, 2, 2) and statuses() == ["processed"] * 3


def append_many(settings, raws: list[bytes]) -> None:
    """APPEND every mail on one connection (a login per mail would dominate the test)."""
    with IMAPClient(settings.host, port=settings.port, ssl=False, timeout=30) as client:
        client.login(settings.username, settings.password)
        for raw in raws:
            client.append(settings.folder, raw)


def folder_size(settings, folder: str) -> int:
    with IMAPClient(settings.host, port=settings.port, ssl=False, timeout=10) as client:
        client.login(settings.username, settings.password)
        return client.select_folder(folder, readonly=True)[b"EXISTS"]


@pytest.fixture
def moves(monkeypatch) -> list[tuple[int, str]]:
    """(number of UIDs, target folder) of every MOVE command sent (they still run)."""
    sent: list[tuple[int, str]] = []
    real = IMAPClient.move

    def spy(self, messages, folder):
        sent.append((len(messages), folder))
        return real(self, messages, folder)

    monkeypatch.setattr(IMAPClient, "move", spy)
    return sent


def test_a_burst_is_moved_in_chunks_of_200_each_recorded(services, imap_settings, moves):
    """GIVEN 450 stored mails, processed (their status set as the pipeline leaves it:
    processing 450 mails would only slow the test) WHEN they are moved
    THEN three MOVE commands (200, 200, 50) take all 450 to the processed folder,
    and every stored message is recorded as moved."""
    from sqlalchemy import update

    from mailbot.db import transaction

    append_many(imap_settings, [question(n) for n in range(450)])
    with Mailbox(imap_settings) as box:
        uidvalidity = box.sync()[0]
        assert poller.store_new(services, box, uidvalidity) == 450
        with transaction(services.engine) as session:
            session.exec(update(RawMessage).values(status="processed"))
        assert poller.move_done(services, box, uidvalidity) == 450
    assert moves == [(200, "mailbot/processed"), (200, "mailbot/processed"), (50, "mailbot/processed")]
    assert folder_size(imap_settings, "mailbot/processed") == 450
    assert folder_size(imap_settings, "INBOX") == 0
    assert {(r.status, r.moved) for r in rows(services)} == {("processed", True)}
    assert poller.poll(services).moved == 0  # nothing left to move


def test_a_crash_between_a_chunk_s_move_and_its_record_moves_each_mail_once(
        services, imap_settings, moves, monkeypatch):
    """GIVEN a poll that dies after its first chunk's MOVE, before recording it
    WHEN the next poll runs
    THEN it moves that chunk's UIDs again (gone: nothing happens) and records them;
    every mail is in the processed folder once, none is processed twice."""
    monkeypatch.setattr(poller, "MOVE_CHUNK", 2)
    append_many(imap_settings, [question(n) for n in range(5)])
    real_record = poller.record_moved

    def crash(*_args):
        raise SystemExit("killed between MOVE and its record")

    monkeypatch.setattr(poller, "record_moved", crash)
    with pytest.raises(SystemExit):
        poller.poll(services)
    assert folder_size(imap_settings, "INBOX") == 3 and not any(r.moved for r in rows(services))
    monkeypatch.setattr(poller, "record_moved", real_record)
    again = poller.poll(services)
    assert (again.stored, again.processed, again.moved) == (0, 0, 5)
    assert [count for count, _folder in moves] == [2, 2, 2, 1]
    assert folder_size(imap_settings, "mailbot/processed") == 5
    assert folder_size(imap_settings, "INBOX") == 0
    assert {(r.status, r.moved) for r in rows(services)} == {("processed", True)}


def test_quarantined_and_processed_mail_go_to_their_own_folder_in_one_move_each(
        services, imap_settings, moves, monkeypatch):
    """GIVEN five mails of which the pipeline quarantines the first two
    THEN one MOVE takes those two to quarantine and one the other three to processed."""
    from mailbot import pipeline
    from mailbot.errors import MailbotError

    append_many(imap_settings, [question(n) for n in range(5)])
    real_process, seen = pipeline.process, []

    def quarantining_the_first_two(services_, raw_id, parsed=None):
        seen.append(raw_id)
        if len(seen) <= 2:
            return pipeline.quarantine(services_, raw_id, MailbotError("unreadable (test)"))
        return real_process(services_, raw_id, parsed)

    monkeypatch.setattr(pipeline, "process", quarantining_the_first_two)
    assert poller.poll(services).moved == 5
    assert moves == [(2, "mailbot/quarantine"), (3, "mailbot/processed")]
    assert Counter(r.status for r in rows(services)) == {"quarantined": 2, "processed": 3}
    assert (folder_size(imap_settings, "mailbot/quarantine"), folder_size(imap_settings, "mailbot/processed")) == (2, 3)


def test_only_a_renumbered_folder_is_searched_for_copies(services, imap_settings, monkeypatch):
    """The search for copies of stored mail (two queries a mail) runs only when the folder
    holds mail under another UIDVALIDITY: not on a folder that was never renumbered."""
    searched = []
    real_search = poller._same_mail_elsewhere
    monkeypatch.setattr(poller, "_same_mail_elsewhere", lambda *args: searched.append(args) or real_search(*args))
    folder = "applications"
    make_folder(imap_settings, folder)
    services.settings = services.settings.model_copy(
        update={"imap": services.settings.imap.model_copy(update={"folder": folder})})
    append(services.settings.imap, question(1))
    box, uidvalidity = _selected(services.settings.imap)
    with Session(services.engine) as session:
        assert not poller.stored_under_other_uidvalidity(session, folder, uidvalidity)
    assert poller.store_new(services, box, uidvalidity) == 1 and searched == []
    with Session(services.engine) as session:
        assert not poller.stored_under_other_uidvalidity(session, folder, uidvalidity)
        assert poller.stored_under_other_uidvalidity(session, folder, uidvalidity + 1)
        assert poller.stored_under_other_uidvalidity(session, folder, uidvalidity - 1)
        assert not poller.stored_under_other_uidvalidity(session, "elsewhere", uidvalidity + 1)
    recreate(imap_settings, folder)
    append(services.settings.imap, question(1))
    assert poller.store_new(services, *_selected(services.settings.imap)) == 1 and len(searched) == 1
    assert [r.status for r in rows(services)] == ["new", "duplicate"]
