"""`mailbot digest --send` through the command line to a real SMTP server, and the HTML as a
browser draws it: Debian's Chromium, headless, to a PNG and to a PDF whose text is read back.

The database is seeded with the real use cases (tests/test_digest.py ``seed``). The PNG
and the PDF are written under pytest's tmp_path, never into the checkout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import unicodedata
from email import message_from_bytes, policy
from html.parser import HTMLParser
from pathlib import Path

import pdfplumber
import pytest
from PIL import Image
from typer.testing import CliRunner

from mailbot import config
from mailbot.cli import app as cli
from mailbot.services import build
from tests.test_digest import BOUNCED_TO, STAFF, config_data, number, seed
from tests.test_hours import write_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_SECONDS = 120
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="Debian's chromium is not installed (.ci/setup installs it)")


@pytest.fixture
def sent_digest(tmp_path, smtp_sink):
    """A seeded database, then `mailbot digest --send` to the sink: the digest as received."""
    data = config_data(tmp_path)
    data["smtp"]["port"] = smtp_sink.port
    path = write_config(tmp_path / "config.toml", data)
    seeded = seed(build(config.load(path, environ={})))
    result = CliRunner().invoke(cli, ["--config", str(path), "digest", "--send"])
    assert result.exit_code == 0, result.output
    assert "digest queued" in result.output and "failed=0" in result.output
    # --send drains the whole outbox: the applicants' pending mails go out with the digest.
    digests = [m for m in smtp_sink.messages if "日次ダイジェスト" in str(m.message["Subject"])]
    assert len(digests) == 1
    return seeded, digests[0]


def parts(message) -> tuple[str, str]:
    """The text and the HTML of a multipart/alternative message, in that order."""
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    return text.get_content(), html.get_content()


def test_the_digest_arrives_as_text_and_html_with_every_item(sent_digest):
    seeded, mail = sent_digest
    message = message_from_bytes(mail.content, policy=policy.default)
    assert sorted(mail.rcpt_tos) == sorted(STAFF) and message["Auto-Submitted"] == "auto-generated"
    assert "要対応 6件" in message["Subject"]
    text, html = parts(message)
    for words in [number(4), number(5), "株式会社みなと商事", f"mailbot adopt {number(4)}",
                  f"mailbot documents {number(1)}", "mailbot messages --class question",
                  f"mailbot reprocess {seeded.broken_id}", f"mailbot held --release {BOUNCED_TO}",
                  "採択：3 / 5社", "有限会社山田製作所"]:
        assert words in text and words in html, words
    assert "株式会社<b>北斗</b>&電子" in text and "株式会社&lt;b&gt;北斗&lt;/b&gt;&amp;電子" in html


def test_the_html_parses_and_holds_nothing_from_outside(sent_digest):
    _, mail = sent_digest
    _, html = parts(message_from_bytes(mail.content, policy=policy.default))
    tags, links = [], []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append(tag)
            links.extend(value for name, value in attrs if name in ("src", "href") and value)

    parser = Collect()
    parser.feed(html)
    parser.close()
    assert tags[:2] == ["html", "head"] and tags.count("table") >= 8
    assert "script" not in tags and "img" not in tags and "link" not in tags
    assert [link for link in links if "http" in link] == [] and links == []


def chromium(tmp_path: Path, *args: str) -> None:
    """Run headless Chromium on its own profile; on a hang, kill it and everything it started."""
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)  # its own process group, killed as one
    try:
        _, err = process.communicate(timeout=CHROMIUM_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_SECONDS} s: {' '.join(args)}")
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]


@needs_chromium
def test_chromium_draws_the_tables_and_the_page_reads_right(sent_digest, tmp_path):
    seeded, mail = sent_digest
    _, html = parts(message_from_bytes(mail.content, policy=policy.default))
    page = tmp_path / "digest.html"
    page.write_text(html, encoding="utf-8")
    png, pdf = tmp_path / "digest.png", tmp_path / "digest.pdf"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,2000", page.as_uri())
    chromium(tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri())
    with Image.open(png) as image:
        assert image.size == (1200, 2000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 10  # not a blank page: text, header bars, borders
    with pdfplumber.open(pdf) as document:
        words = comparable("".join(page.extract_text() or "" for page in document.pages))
        # A cell's lines come back interleaved with its neighbours' in the page text: read cells whole.
        cells = {comparable(cell) for page in document.pages for table in page.extract_tables()
                 for row in table for cell in row if cell}
    for heading in ["1. 対応が必要なもの（6件）", "採択待ちの申請", "2. 自動で返信したメール", "3. 除外したメール",
                    "4. 事業の状況", "滞留・要確認"]:
        assert comparable(heading) in words, heading
    for cell in [f"{number(4)} 新着", "株式会社みなと商事", "ドイツ", "押印なし", "有限会社山田製作所", "20.5時間",
                 "採択：3 / 5社（採択待ち 2件、残り枠 0）", "ベトナム 2社、中国 1社", "株式会社キャンセル待ち工業"]:
        assert comparable(cell) in cells, cell


def comparable(text: str) -> str:
    """NFKC without spaces: the PDF's font maps some kanji to their Kangxi radical twins (⾃ for 自)."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def test_the_daemons_cycle_sends_the_scheduled_digest_once(make_settings, mailbox, smtp_sink):
    """GIVEN a last digest a week ago (the schedule's weekday 09:00 has passed since) and an
    application in the mailbox
    WHEN the daemon's cycle runs twice
    THEN the first cycle answers the applicant and sends staff one digest listing it; the second
    sends nothing more (the fire time is spent)."""
    from datetime import UTC, datetime, timedelta

    from mailbot.config import StaffSettings
    from mailbot.daemon import run_once
    from mailbot.db import transaction
    from mailbot.tables.digest import DigestRun
    from tests.e2e.test_step01 import application

    services = build(make_settings().model_copy(update={"staff": StaffSettings(digest_to=STAFF)}))
    week_ago = datetime.now(UTC) - timedelta(days=7)
    with transaction(services.engine) as session:
        session.add(DigestRun(period_start=week_ago, period_end=week_ago, outcome="baseline"))
    mailbox.deliver(application())

    first = run_once(services)
    assert (first.poll.processed, first.sent) == (1, 2)
    [digest] = [m for m in smtp_sink.messages if set(STAFF) <= set(m.rcpt_tos)]
    text, _html = parts(digest.message)
    assert "株式会社" in text and "TS-" in text

    second = run_once(services)
    assert second.sent == 0 and len(smtp_sink.messages) == 2
