"""Hostile input end to end (issue 7, item 6): each bad mail through the real path.

Every mail here is made by code (tests/hostile/mails.py), delivered to the
real Dovecot, followed by an ordinary application from another company, and
one cycle of the service runs as the daemon runs it (``run_once``); replies
travel over SMTP to the real sink. For each kind the test says the class it
lands in, what the applicant is told (when anything is due) and what staff
see (the digest, the quarantine list), and that the daemon's promises hold:
the mail is kept byte for byte and moved out of the inbox, never deleted; the
cycle ends; the next mail is still answered; the process's memory stays
under an explicit limit (the PDF reader runs in children under their own
RLIMIT_AS: mailbot/forms/sandbox.py).
"""

from __future__ import annotations

import mmap

import pytest
from imapclient.exceptions import IMAPClientError

from mailbot import digest, quarantine
from mailbot.sink import ReceivedMail
from tests.forms import hostile as pdfs
from tests.hostile import mails
from tests.hostile.conftest import MB, NEXT_SENDER, CycleResult

#: How far the service process may grow in one cycle with a hostile mail (of at most
#: 1.5 MB here) in it: a few copies of the mail, never what its contents inflate to.
MEMORY_LIMIT = 100 * MB
#: The service's memory goal (issue 7: RSS <= 300 MB), for a cycle with a 50 MB attachment in it.
BIG_MAIL_MEMORY_LIMIT = 300 * MB

#: Header fields a reply carries (tests/test_header_injection.py holds the same list).
REPLY_HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                 "Content-Transfer-Encoding", "In-Reply-To", "References", "Auto-Submitted",
                 "X-Auto-Response-Suppress", "X-Loop"}


def assert_survived(result: CycleResult, raw: bytes, folder: str = "processed",
                    memory_limit: int = MEMORY_LIMIT) -> None:
    """What the daemon promises whatever the mail: kept byte for byte and moved out of the
    inbox (never deleted), the cycle ended with everything sent, the next application was
    answered with its receipt, and the process grew less than ``memory_limit``.

    ``raw``: the mail as the server handed it over (Dovecot stores a bare CR as CRLF).
    """
    poll = result.report.poll
    assert (poll.stored, poll.processed, poll.moved) == (2, 2, 2)
    assert result.hostile.raw == raw, "the mail is kept exactly as it came"
    assert result.folders == {"inbox": 0, "processed": 1 + (folder == "processed"),
                              "quarantine": int(folder == "quarantine")}
    assert (result.report.retried, result.report.failed) == (0, 0)
    assert (result.follow_up.status, result.follow_up.mail_class) == ("processed", "application")
    (receipt,) = result.replies_to(NEXT_SENDER)
    assert [o.kind for o in result.outbox_for(result.follow_up)] == ["receipt"]
    assert "受付番号：TS-2026-" in str(receipt.message["Subject"])
    assert result.rss_growth < memory_limit, f"the service grew {result.rss_growth / MB:.0f} MB"


def the_reply(result: CycleResult, kind: str) -> ReceivedMail:
    """The one reply to the hostile mail: its kind in the outbox, and the mail the sink got."""
    assert [o.kind for o in result.outbox_for(result.hostile)] == [kind]
    (reply,) = result.replies_to(mails.SENDER)
    return reply


def assert_answered_as_unreadable(result: CycleResult, code: str, words: str | tuple[str, ...]) -> None:
    """A question whose PDF could not be read: the applicant is told why (``words``, or one of
    them), staff see it in the digest."""
    hostile = result.hostile
    assert (hostile.status, hostile.mail_class, hostile.reason) == ("processed", "question",
                                                                    f"PDF unreadable: {code}")
    reply = the_reply(result, "pdf_unreadable")
    assert reply.rcpt_tos == [mails.SENDER]
    assert "添付ファイルを読み取れませんでした" in str(reply.message["Subject"])
    text = reply.message.get_content()
    assert any(w in text for w in ((words,) if isinstance(words, str) else words)), text


def assert_shown_to_staff_as_question(services, result: CycleResult) -> None:
    text = digest.preview(services).text
    assert "お申込者からの質問・返信（1件）" in text and f"受信メール番号 {result.hostile.id}" in text


def assert_quarantined(services, result: CycleResult, error: str) -> None:
    """Kept aside with its error, listed for staff and in the digest with the command to run it again."""
    hostile = result.hostile
    assert (hostile.status, hostile.mail_class, hostile.error) == ("quarantined", None, error)
    assert result.outbox_for(hostile) == [] and result.replies_to(mails.SENDER) == []
    assert [(q["id"], q["error"]) for q in quarantine.listing(services)] == [(hostile.id, error)]
    text = digest.preview(services).text
    assert "処理できなかったメール（1件）" in text and f"エラー：{error}" in text
    assert f"mailbot reprocess {hostile.id}" in text


# --- malformed MIME -------------------------------------------------------------------


@pytest.mark.parametrize(("build", "code", "words"), [
    (mails.cut_mid_attachment, "broken", "途中までしか届いていない"),
    (mails.bad_base64, "not_pdf", "PDFとして開けませんでした"),
], ids=["cut-mid-attachment-no-closing-boundary", "bad-base64"])
def test_malformed_mime_around_the_pdf_is_answered_with_what_went_wrong(
        services, hostile_cycle, build, code, words):
    """GIVEN a mail whose PDF part is cut half-way with no closing boundary, or whose base64 is garbled
    WHEN one cycle runs
    THEN it is a question whose PDF is unreadable: the applicant is told why (cut off / not a PDF)
    and to send it again, staff see it among the questions, and the next application is answered."""
    raw = build()
    result = hostile_cycle(raw)
    assert_answered_as_unreadable(result, code, words)
    assert_shown_to_staff_as_question(services, result)
    assert_survived(result, raw)


def test_an_application_nested_100_multiparts_deep_is_received(hostile_cycle):
    """GIVEN the application PDF inside 100 levels of multipart/mixed
    WHEN one cycle runs
    THEN it is found and read: an application with its receipt, like any other."""
    raw = mails.nested(100)
    result = hostile_cycle(raw)
    assert (result.hostile.status, result.hostile.mail_class) == ("processed", "application")
    reply = the_reply(result, "receipt")
    assert sorted(reply.rcpt_tos) == sorted([mails.SENDER, mails.contact_email()])
    assert_survived(result, raw)


@pytest.mark.parametrize(("build", "error"), [
    (mails.broken_boundary, "ParseError: multipart/mixed: its boundary 'declared-boundary' never occurs, "
                            "so its parts (text, attachments) cannot be told apart"),
    (lambda: mails.nested(1000), "ParseError: MIME parts nested deeper than 200 levels: not read"),
    (mails.no_from, "ParseError: no sender address in From:"),
    (mails.no_headers, "ParseError: no header fields: not an e-mail message"),
], ids=["boundary-never-occurs", "nested-1000-deep", "no-from", "no-header-at-all"])
def test_mime_that_cannot_be_read_is_quarantined_for_staff(services, hostile_cycle, build, error):
    """GIVEN a multipart whose declared boundary never occurs, parts nested 1,000 deep, a mail without
    From:, or a body without headers
    WHEN one cycle runs
    THEN it is quarantined with an error that says what is wrong, moved to the quarantine folder,
    listed by `mailbot quarantined` and in the digest with `mailbot reprocess ID`; nobody is
    answered automatically (there is no one to answer, or no telling what was sent)."""
    raw = build()
    result = hostile_cycle(raw)
    assert_quarantined(services, result, error)
    assert_survived(result, raw, folder="quarantine")


# --- size: a 50 MB attachment -----------------------------------------------------------


@pytest.fixture(scope="module")
def big_mail() -> bytes:
    return mails.big_attachment(50 * MB)


@pytest.mark.slow
def test_a_50_mb_attachment_is_answered_with_the_size_limit(services, hostile_cycle, big_mail):
    """GIVEN an application mail with a 50 MB PDF (68 MB of base64)
    WHEN one cycle runs
    THEN it is refused before any PDF reader sees it: the applicant is told the limit (20 MB) and to
    send the form alone; the 68 MB are kept; the next application is answered."""
    result = hostile_cycle(big_mail)
    assert_answered_as_unreadable(result, "too_large", "添付ファイルが大きすぎます（上限 20 MB）")
    assert_shown_to_staff_as_question(services, result)
    assert_survived(result, big_mail, memory_limit=1024 * MB)  # the limit itself: the test below


@pytest.mark.slow
def test_a_50_mb_attachment_keeps_the_service_under_its_memory_goal(hostile_cycle, big_mail):
    """GIVEN an application mail with a 50 MB PDF
    WHEN one cycle runs
    THEN the service process grows less than 300 MB: a few copies of the mail, no more (on
    PostgreSQL too: the raw mail is read back as binary bytea, not as hex text)."""
    result = hostile_cycle(big_mail)
    assert result.rss_growth < BIG_MAIL_MEMORY_LIMIT, f"the service grew {result.rss_growth / MB:.0f} MB"


# --- archives and PDFs --------------------------------------------------------------------


def test_a_zip_bomb_is_left_closed_and_the_applicant_told_why(services, hostile_cycle):
    """GIVEN 申請書類.zip (1.4 MB) whose 申請書.pdf inflates to 1 GiB
    WHEN one cycle runs
    THEN at most 20 MB of it is ever inflated; the applicant is told the PDF in the zip is over the
    limit and to attach it unzipped (not "this is not a PDF"); staff see it among the questions."""
    raw = mails.zip_bomb()
    result = hostile_cycle(raw)
    assert_answered_as_unreadable(result, "too_large", "ZIPファイル（申請書類.zip）の中のPDF（申請書.pdf）は、"
                                                        "展開すると上限（20 MB）を超える")
    assert "ZIPに圧縮せずに" in the_reply(result, "pdf_unreadable").message.get_content()
    assert_shown_to_staff_as_question(services, result)
    assert_survived(result, raw)


#: What the applicant reads for a bomb: preflight's refusal, or the reader child's memory limit
#: when preflight's own decoding ran into it first. Which one depends on how much address space
#: the daemon had when the child was forked (the defect pinned by
#: test_a_pdf_reader_gets_its_memory_whatever_the_daemon_has_grown_to); both name the cause.
TOO_COMPLEX = ("圧縮されたデータが極端に大きい", "処理に必要なメモリが上限を超えた")

HOSTILE_PDFS = {
    "flate-bomb-1-GiB": (pdfs.flate_bomb, "too_complex", TOO_COMPLEX),
    "image-bomb-32768x32768": (pdfs.image_bomb, "too_complex", TOO_COMPLEX),
    "xobjects-nested-10^9-draws": (pdfs.nested_xobjects, "too_complex", ("内部の構造が複雑すぎる",)),
    "encrypted-aes-256": (lambda: pdfs.encrypted("AES-256"), "encrypted", "パスワードが設定されている"),
    "encrypted-rc4-128": (lambda: pdfs.encrypted("RC4-128"), "encrypted", "パスワードが設定されている"),
    "5000-pages": (lambda: pdfs.many_pages(5000), "too_many_pages", "ページ数が上限（50ページ）を超えて"),
    "elf-executable-renamed": (mails.elf_executable, "not_pdf", "PDFとして開けませんでした"),
    "pe-executable-renamed": (mails.pe_executable, "not_pdf", "PDFとして開けませんでした"),
}


@pytest.mark.parametrize("kind", list(HOSTILE_PDFS))
def test_a_hostile_pdf_is_refused_with_its_reason(services, hostile_cycle, kind):
    """GIVEN an application mail whose 申請書.pdf is a decompression bomb, encrypted, 5,000 pages long,
    or a Linux / Windows executable renamed
    WHEN one cycle runs
    THEN the sandboxed reader refuses it with its code; the applicant is told that very reason
    (password, pages over the limit, not a PDF, too complex) and how to send it again; staff see it
    among the questions; the service did not grow (the reading is done in a child process)."""
    build, code, words = HOSTILE_PDFS[kind]
    raw = mails.with_pdf(build())
    result = hostile_cycle(raw)
    assert_answered_as_unreadable(result, code, words)
    assert_shown_to_staff_as_question(services, result)
    assert_survived(result, raw)


@pytest.fixture
def grown_daemon():
    """1 GiB more address space in the service process, never touched (no memory used): what
    thread arenas, libraries and big mails leave a daemon that has run for a while with (VmSize)."""
    region = mmap.mmap(-1, 1024 * MB)
    yield
    region.close()


def test_a_pdf_reader_gets_its_memory_whatever_the_daemon_has_grown_to(grown_daemon, hostile_cycle):
    """GIVEN a daemon whose address space grew by 1 GiB (untouched), a flate bomb, then an ordinary application
    WHEN one cycle runs
    THEN the bomb gets preflight's own refusal and the application its receipt: each PDF is read
    with [service] pdf_memory_mb of its own, not with what the daemon left of it."""
    raw = mails.with_pdf(pdfs.flate_bomb())
    result = hostile_cycle(raw)
    assert_answered_as_unreadable(result, "too_complex", "圧縮されたデータが極端に大きい")
    assert_survived(result, raw)


def test_a_pdf_with_javascript_open_action_is_read_never_run(services, hostile_cycle):
    """GIVEN the application form with a JavaScript /OpenAction (an endless loop)
    WHEN one cycle runs
    THEN it reads as the application and gets its receipt: the readers never run scripts, and the
    loop did not stop the cycle; staff are warned before they open the PDF (the application's
    warning and the digest's note), the applicant is not told."""
    raw = mails.with_pdf(pdfs.javascript_open_action())
    result = hostile_cycle(raw)
    assert (result.hostile.status, result.hostile.mail_class) == ("processed", "application")
    reply = the_reply(result, "receipt").message.get_content()
    assert "受付番号：TS-2026-0001" in reply and "JavaScript" not in reply
    text = digest.preview(services).text
    entry = text[text.index("TS-2026-0001"):text.index("TS-2026-0002")]
    assert "注意：このPDFには、開くと動作する内容（JavaScript）が含まれています" in entry
    assert "注意：" not in text[text.index("TS-2026-0002"):]  # the ordinary application after it
    assert_survived(result, raw)


# --- headers --------------------------------------------------------------------------------


def as_dovecot_stores_it(raw: bytes) -> bytes:
    """The server turns the subject's bare CR into a line end: what it stores and hands over."""
    assert raw.count(b"\rX-Injected") == 1
    return raw.replace(b"\rX-Injected", b"\r\nX-Injected")


def test_crlf_and_control_characters_in_every_header_field_never_shape_the_reply(hostile_cycle):
    """GIVEN the application form in a mail with CR/LF, NUL, BEL, ESC, DEL, NEL and U+2028 in From's
    display name, Subject (and a bare CR), Message-ID and the PDF's file name, each hiding "Bcc: evil@…"
    WHEN one cycle runs
    THEN the receipt goes to the sender and the form's contact only, with the reply's own header
    fields and nothing else; the mail is stored with its subject and Message-ID on one line."""
    raw = mails.control_characters()
    result = hostile_cycle(raw)
    hostile = result.hostile
    assert (hostile.status, hostile.mail_class) == ("processed", "application")
    assert hostile.subject == "申請書 Bcc: evil@attacker.example 本文"
    assert hostile.message_id == "<ctl.1@hostile-shoji.example.co.jp>"
    reply = the_reply(result, "receipt")
    assert sorted(reply.rcpt_tos) == sorted([mails.SENDER, mails.contact_email()])
    assert set(reply.message.keys()) <= REPLY_HEADERS
    assert reply.message.get_all("To") == [f"{mails.SENDER}, {mails.contact_email()}"]
    assert str(reply.message["In-Reply-To"]) == "<ctl.1@hostile-shoji.example.co.jp>"
    assert b"attacker" not in reply.content
    assert_survived(result, as_dovecot_stores_it(raw))


def test_control_characters_in_the_name_and_file_name_stay_out_of_the_reply_text(hostile_cycle):
    """GIVEN the same hostile From name and file name, on a Word file instead of the PDF
    WHEN one cycle runs
    THEN the applicant is asked for a PDF in a reply whose greeting and file name are each one line
    of plain text: no control character, and no line of the reply starts with what was hidden."""
    raw = mails.control_characters(pdfs.docx_renamed(), extension=".docx")
    result = hostile_cycle(raw)
    assert (result.hostile.mail_class, result.hostile.reason.split(":")[0]) == ("question", "no PDF attachment")
    text = the_reply(result, "pdf_unreadable").message.get_content()
    assert "山田 Bcc: evil@attacker.example 太郎 様" in text
    assert "添付ファイル（申請 Bcc: evil@attacker.example 書.docx）はPDF形式ではありませんでした" in text
    assert not [c for c in text.replace("\r\n", "\n") if c in "\r" + mails.CONTROLS]
    assert not [line for line in text.splitlines() if line.startswith("Bcc")]
    assert_survived(result, as_dovecot_stores_it(raw))


def test_ten_thousand_recipients_in_to_get_no_mail(hostile_cycle):
    """GIVEN the application form sent To: 10,000 addresses (a 490 KB header)
    WHEN one cycle runs
    THEN it is an application like any other, and its receipt goes to the sender and the form's
    contact only: none of the 10,000 hears from the service."""
    raw = mails.many_recipients(10_000)
    result = hostile_cycle(raw)
    assert (result.hostile.status, result.hostile.mail_class) == ("processed", "application")
    reply = the_reply(result, "receipt")
    assert sorted(reply.rcpt_tos) == sorted([mails.SENDER, mails.contact_email()])
    assert sum(len(m.rcpt_tos) for m in result.replies) == 2 + 1  # and the follow-up's sender
    assert_survived(result, raw)


# --- nothing at all ---------------------------------------------------------------------------


def test_a_message_of_only_headers_is_a_question_for_staff(services, hostile_cycle):
    """GIVEN a header block with no blank line and no body
    WHEN one cycle runs
    THEN it is a question from a person with no attachment: not answered automatically (nothing
    asks for it), shown to staff in the digest's questions."""
    raw = mails.headers_only()
    result = hostile_cycle(raw)
    hostile = result.hostile
    assert (hostile.status, hostile.mail_class, hostile.reason) == ("processed", "question",
                                                                    "a mail from a person, no attachment")
    assert result.outbox_for(hostile) == [] and result.replies_to(mails.SENDER) == []
    assert_shown_to_staff_as_question(services, result)
    assert_survived(result, raw)


def test_an_empty_message_never_reaches_the_inbox(mailbox):
    """GIVEN an empty message (0 bytes)
    WHEN it is delivered
    THEN the mail server refuses it: there is no mail to keep (the next test takes the nearest thing)."""
    with pytest.raises(IMAPClientError, match="zero byte"):
        mailbox.deliver(b"")
    assert mailbox.count("INBOX") == 0


@pytest.mark.parametrize("raw", [b"\r\n", b" \r\n\t\r\n"], ids=["one-line-break", "white-space"])
def test_a_message_with_nothing_in_it_is_quarantined(services, hostile_cycle, raw):
    """GIVEN a message of one line break, or white space only
    WHEN one cycle runs
    THEN it is quarantined as an empty message (there is nobody to answer), shown to staff."""
    result = hostile_cycle(raw)
    assert_quarantined(services, result, "ParseError: empty message")
    assert_survived(result, raw, folder="quarantine")
