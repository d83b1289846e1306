"""Mailbox against a real Dovecot 2.3 (fixtures ``dovecot`` / ``imap_settings``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from imapclient import IMAPClient

from mailbot.errors import ImapError
from mailbot.intake.imap import Mailbox
from tests.dovecot import append

JST = timezone(timedelta(hours=9))


def message(subject: str, body: str = "本文です。\n") -> bytes:
    msg = EmailMessage(policy=SMTP)  # CRLF, as the server stores it
    msg["From"] = "tanaka@example.co.jp"
    msg["To"] = "apply@jetro.example"
    msg["Subject"] = subject
    msg.set_content(body)
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="申請書.pdf")
    return msg.as_bytes()


def flags_of(settings, uid: int) -> tuple[bytes, ...]:
    with IMAPClient(settings.host, port=settings.port, ssl=False) as client:
        client.login(settings.username, settings.password)
        client.select_folder(settings.folder, readonly=True)
        return client.get_flags([uid])[uid]


def test_fetch_returns_the_appended_bytes_in_internaldate_order(imap_settings):
    late, early = message("late"), message("early")
    uid_late = append(imap_settings, late, datetime(2025, 4, 1, 10, 0, tzinfo=JST))
    uid_early = append(imap_settings, early, datetime(2025, 4, 1, 9, 0, tzinfo=JST))
    with Mailbox(imap_settings) as box:
        uidvalidity = box.select()
        assert box.uids() == [uid_late, uid_early]
        fetched = list(box.fetch(box.uids()))
    assert [m.uid for m in fetched] == [uid_early, uid_late]  # arrival order, not UID order
    assert [m.raw for m in fetched] == [early, late]
    assert fetched[0].arrived_at == datetime(2025, 4, 1, 0, 0, tzinfo=timezone.utc)
    assert fetched[0].arrived_at.utcoffset() == timedelta(0)
    assert {m.uidvalidity for m in fetched} == {uidvalidity} and uidvalidity > 0


def test_same_internaldate_orders_by_uid(imap_settings):
    when = datetime(2025, 4, 1, 9, 0, tzinfo=timezone.utc)
    uids = [append(imap_settings, message(f"m{i}"), when) for i in range(3)]
    with Mailbox(imap_settings) as box:
        box.select()
        assert [m.uid for m in box.fetch(reversed(uids))] == uids


def test_fetch_in_batches_of_many_messages(imap_settings, monkeypatch):
    monkeypatch.setattr("mailbot.intake.imap.BATCH", 2)
    start = datetime(2025, 4, 1, tzinfo=timezone.utc)
    raws = [message(f"m{i}") for i in range(5)]
    for i, raw in enumerate(raws):
        append(imap_settings, raw, start - timedelta(minutes=i))  # newest first
    with Mailbox(imap_settings) as box:
        box.select()
        assert [m.raw for m in box.fetch(box.uids())] == raws[::-1]


def test_fetch_does_not_set_seen(imap_settings):
    uid = append(imap_settings, message("unread"))
    with Mailbox(imap_settings) as box:
        box.select()
        assert len(list(box.fetch([uid]))) == 1
    assert b"\\Seen" not in flags_of(imap_settings, uid)


def test_fetch_skips_uids_that_are_gone(imap_settings):
    uid = append(imap_settings, message("only"))
    with Mailbox(imap_settings) as box:
        box.select()
        assert [m.uid for m in box.fetch([uid, uid + 100])] == [uid]


def test_select_creates_the_processed_and_quarantine_folders(imap_settings):
    with Mailbox(imap_settings) as box:
        box.select()
        names = {name for _, _, name in box.client.list_folders()}
    assert {"mailbot/processed", "mailbot/quarantine"} <= names


def test_uidvalidity_is_stable_between_connections(imap_settings):
    with Mailbox(imap_settings) as box:
        first = box.select()
    with Mailbox(imap_settings) as box:
        assert box.select() == first


def test_move_to_processed_folder(imap_settings):
    done_raw = message("done")  # random MIME boundary: keep the very bytes
    keep, done = append(imap_settings, message("keep")), append(imap_settings, done_raw)
    with Mailbox(imap_settings) as box:
        box.select()
        box.move([done], imap_settings.processed_folder)
        assert box.uids() == [keep]
    processed = imap_settings.model_copy(update={"folder": imap_settings.processed_folder})
    with Mailbox(processed) as box:
        box.select()
        assert [m.raw for m in box.fetch(box.uids())] == [done_raw]


def test_move_without_the_move_extension(imap_settings, monkeypatch):
    keep, done = append(imap_settings, message("keep")), append(imap_settings, message("done"))
    monkeypatch.setattr(Mailbox, "_can_move", lambda self: False)  # as on servers without RFC 6851
    with Mailbox(imap_settings) as box:
        box.select()
        box.move([done], imap_settings.quarantine_folder)
        assert box.uids() == [keep]
    quarantine = imap_settings.model_copy(update={"folder": imap_settings.quarantine_folder})
    with Mailbox(quarantine) as box:
        box.select()
        assert len(box.uids()) == 1


def in_folder(settings, folder: str) -> list[bytes]:
    """The raw bytes of every message in ``folder``, sorted (on a connection of its own)."""
    with Mailbox(settings.model_copy(update={"folder": folder})) as box:
        box.select()
        return sorted(mail.raw for mail in box.fetch(box.uids()))


@pytest.mark.parametrize("extension", ["MOVE", "COPY + EXPUNGE"])
def test_a_uid_set_moves_in_one_command_and_gone_uids_are_no_error(imap_settings, monkeypatch, extension):
    raws = [message(f"done {n}") for n in range(5)]
    uids = [append(imap_settings, raw) for raw in raws]
    keep = append(imap_settings, message("keep"))
    if extension != "MOVE":
        monkeypatch.setattr(Mailbox, "_can_move", lambda self: False)
    commands = []
    for name in ("move", "copy"):
        real = getattr(IMAPClient, name)
        monkeypatch.setattr(IMAPClient, name, lambda self, *a, _real=real, _name=name:
                            commands.append(_name) or _real(self, *a))
    with Mailbox(imap_settings) as box:
        box.select()
        box.move(uids[:3], imap_settings.processed_folder)
        # Moved already (a crash before the move was recorded): the server moves what is left.
        box.move(uids, imap_settings.processed_folder)
        box.move([], imap_settings.processed_folder)  # nothing to move: no command at all
        assert box.uids() == [keep]
    assert len(commands) == 2
    assert in_folder(imap_settings, imap_settings.processed_folder) == sorted(raws)


def test_wrong_password_is_an_imap_error_without_the_password(imap_settings):
    wrong = imap_settings.model_copy(update={"password": "not-the-password"})
    with pytest.raises(ImapError) as caught:
        with Mailbox(wrong):
            pass
    text = str(caught.value)
    assert "login" in text and f"127.0.0.1:{imap_settings.port}" in text
    assert "not-the-password" not in text


def test_unreachable_server_is_an_imap_error(imap_settings):
    from tests.dovecot import free_port

    closed = imap_settings.model_copy(update={"port": free_port()})
    with pytest.raises(ImapError, match="connect failed"):
        with Mailbox(closed):
            pass


def test_missing_folder_is_an_imap_error_naming_it(imap_settings):
    missing = imap_settings.model_copy(update={"folder": "NoSuchFolder"})
    with Mailbox(missing) as box, pytest.raises(ImapError, match="NoSuchFolder"):
        box.select()


def test_fetch_before_select_is_an_error(imap_settings):
    with Mailbox(imap_settings) as box, pytest.raises(ImapError, match="select"):
        list(box.fetch([1]))


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_against_a_plain_server_is_an_imap_error(imap_settings, security):
    # The test Dovecot has ssl = no: a TLS handshake or STARTTLS must fail loudly, not fall back.
    secured = imap_settings.model_copy(update={"security": security, "timeout_seconds": 5})
    with pytest.raises(ImapError, match="connect failed"):
        with Mailbox(secured):
            pass


def test_status_sees_new_mail_even_on_the_selected_folder(imap_settings):
    # Dovecot answers STATUS on the selected folder from the session's last sync:
    # without the NOOP that status() sends first, UIDNEXT would still say 2 here.
    first = append(imap_settings, message("one"))
    with Mailbox(imap_settings) as box:
        uidvalidity = box.select()
        assert box.status() == (uidvalidity, first + 1)
        second = append(imap_settings, message("two"))
        assert box.status() == (uidvalidity, second + 1) and box.uidnext == second + 1
        assert box.sync() == (uidvalidity, second + 1)
        assert box.uids(second) == [second]


def test_uids_from_a_start_above_every_uid_is_empty(imap_settings):
    # "UID SEARCH UID n:*" matches the highest UID even when it is below n.
    last = append(imap_settings, message("only"))
    with Mailbox(imap_settings) as box:
        box.select()
        assert box.client.search(["UID", f"{last + 5}:*"]) == [last]
        assert box.uids(last + 5) == [] and box.uids(last) == [last]


def test_a_folder_created_by_another_connection_meanwhile_is_no_error(imap_settings, monkeypatch):
    # The daemon's poll and its IDLE watcher log in together and both find the folders missing.
    with Mailbox(imap_settings) as other:
        other.select()  # creates mailbot/processed and mailbot/quarantine
    real = IMAPClient.folder_exists
    asked: set[str] = set()

    def missing_at_first_look(self, name):
        if name not in asked:
            asked.add(name)
            return False  # as seen just before the other connection's CREATE
        return real(self, name)

    monkeypatch.setattr(IMAPClient, "folder_exists", missing_at_first_look)
    with Mailbox(imap_settings) as box:
        assert box.select() > 0
    assert asked == {"mailbot/processed", "mailbot/quarantine"}
