"""The command line as operators and other tools use it: inspect's JSON contract, demo, the daemon."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from mailbot.forms.fill import render_application, sample_values

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "mailbot.cli", "--config", str(ROOT / "config.toml")]


def run(*args, timeout=120):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_inspect_json_follows_the_contract(tmp_path):
    """GIVEN a valid stamped application PDF
    WHEN `mailbot inspect FILE --json` runs
    THEN it exits 0 with exactly the contract's keys, the fields, a present seal and valid true."""
    pdf = tmp_path / "form.pdf"
    pdf.write_bytes(render_application(sample_values(country="EU:DE")))
    result = run("inspect", str(pdf), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"form", "source", "pages", "form_page", "fields", "seal", "problems", "valid"}
    assert (data["form"], data["source"], data["pages"], data["form_page"]) == ("application", "text", 1, 1)
    assert data["fields"]["company_name"] == sample_values()["company_name"]
    assert data["fields"]["country"] == "EU:DE"
    assert data["seal"]["present"] and data["seal"]["near_field"] and data["seal"]["color"] == "red"
    assert data["problems"] == [] and data["valid"] is True
    assert all(value not in ("", None) for value in data["fields"].values())


def test_inspect_reports_problems_with_codes_and_messages(tmp_path):
    """GIVEN an unstamped form with a wrong corporate number
    WHEN inspected
    THEN valid is false and each problem has code, field, severity and a Japanese message."""
    pdf = tmp_path / "form.pdf"
    pdf.write_bytes(render_application(sample_values(corporate_number="1234567890123"), seal="none"))
    data = json.loads(run("inspect", str(pdf), "--json").stdout)
    codes = {p["code"]: p for p in data["problems"]}
    assert {"seal_missing", "corporate_number_invalid"} <= set(codes)
    assert codes["corporate_number_invalid"]["field"] == "corporate_number"
    assert codes["corporate_number_invalid"]["severity"] == "error"
    assert "法人番号" in codes["corporate_number_invalid"]["message_ja"]
    assert data["valid"] is False


def test_inspect_exits_2_on_a_file_that_is_not_a_pdf(tmp_path):
    """GIVEN a Word file renamed .pdf
    WHEN inspected
    THEN exit 2 and {"error": {"code", "message"}}."""
    fake = tmp_path / "form.pdf"
    fake.write_bytes(b"PK\x03\x04 not a pdf at all")
    result = run("inspect", str(fake), "--json")
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "not_pdf" and error["message"]


def test_a_broken_config_stops_the_start_naming_the_key(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text((ROOT / "config.toml").read_text(encoding="utf-8").replace("cap = 18", 'cap = "many"'),
                   encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "mailbot.cli", "--config", str(bad), "status"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "[program] cap" in result.stderr


def test_the_demo_prints_the_replies_and_the_queue():
    """GIVEN nothing but this checkout
    WHEN `mailbot demo` runs
    THEN it exits 0 after printing the receipts, the fix requests, the waiting-list notice and the queue."""
    result = subprocess.run([sys.executable, "-m", "mailbot.cli", "demo"], capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.count("== reply ") == 7
    assert "押印" in out and "キャンセル待ち" in out
    assert "waitlisted" in out and "needs_fix" in out and "queued" in out


def test_the_daemon_answers_and_stops_cleanly_on_sigterm(imap_settings, tmp_path):
    """GIVEN `mailbot run` as a daemon on a real mailbox and SMTP server
    WHEN an application arrives and then SIGTERM is sent
    THEN the receipt is sent, and the daemon exits 0 within a few seconds."""
    from imapclient import IMAPClient

    from mailbot import samples
    from mailbot.sink import SmtpSink

    with SmtpSink() as sink:
        config_file = tmp_path / "config.toml"
        config_file.write_text(_daemon_config(imap_settings, sink.port, tmp_path), encoding="utf-8")
        daemon = subprocess.Popen([sys.executable, "-m", "mailbot.cli", "--config", str(config_file), "run"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            with IMAPClient(imap_settings.host, imap_settings.port, ssl=False) as client:
                client.login(imap_settings.username, imap_settings.password)
                client.append("INBOX", samples.application_mail(
                    render_application(sample_values()), sender="tanaka@example.jp"))
            sink.wait_for(1, timeout=60)
            daemon.send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert daemon.wait(timeout=30) == 0, daemon.stderr.read()[-2000:]
            assert time.monotonic() - started < 30
        finally:
            if daemon.poll() is None:
                daemon.kill()
    assert len(sink.messages) == 1


def _daemon_config(imap, smtp_port: int, tmp_path: Path) -> str:
    from datetime import date, timedelta

    today = date.today()
    return f"""
[imap]
host = "{imap.host}"
port = {imap.port}
username = "{imap.username}"
password = "{imap.password}"
security = "none"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from_address = "chizai@example.jp"
[database]
url = "sqlite:///{tmp_path / 'daemon.db'}"
[program]
opens = {today - timedelta(days=1)}
closes = {today + timedelta(days=30)}
[service]
poll_seconds = 1
rules_dir = "{ROOT / 'rules'}"
templates_dir = "{ROOT / 'templates'}"
"""


def test_inspect_reads_a_fillable_pdf(tmp_path):
    """GIVEN an AcroForm PDF filled in a viewer, with a stamp annotation on the 印 mark
    WHEN inspected
    THEN the values come from the form fields (source acroform) and it is valid."""
    from mailbot.forms.fillable import render_fillable

    pdf = tmp_path / "fillable.pdf"
    pdf.write_bytes(render_fillable(sample_values(), seal="stamp_annotation"))
    data = json.loads(run("inspect", str(pdf), "--json").stdout)
    assert data["source"] == "acroform"
    assert data["fields"] == {k: v for k, v in sample_values().items()}
    assert data["seal"]["present"] and data["seal"]["near_field"] and data["valid"]


def test_inspect_reads_a_scan_and_flags_rather_than_guesses(tmp_path):
    """GIVEN a printed, stamped and scanned form (200 dpi, tilted, JPEG)
    WHEN inspected
    THEN source is ocr, the seal is found on the row, and every expected field is either
    read exactly or named in an *_uncertain warning — never read wrong."""
    from mailbot.forms.scan import simulate_scan

    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(simulate_scan(render_application(sample_values()), dpi=200, angle=-1.0,
                                  jpeg_quality=75))
    data = json.loads(run("inspect", str(pdf), "--json").stdout)
    assert data["source"] == "ocr"
    assert data["seal"]["present"] and data["seal"]["near_field"]
    flagged = {p["field"] for p in data["problems"] if p["code"].endswith("_uncertain")}
    for key, value in sample_values().items():
        assert data["fields"].get(key) == value or key in flagged, key
    assert len(flagged) <= 3


def test_inspect_reads_the_consultation_form_and_judges_it_by_its_own_rules(tmp_path):
    """GIVEN a consultation desk request with a malformed e-mail and no preferred dates
    WHEN inspected
    THEN form is "consultation" and the problems are that form's (no seal asked for)."""
    from mailbot.forms.consultation import (
        render_consultation,
        sample_consultation_values,
    )

    pdf = tmp_path / "consultation.pdf"
    pdf.write_bytes(render_consultation(sample_consultation_values(contact_email="hanako.sato",
                                                                   preferred_dates=None)))
    data = json.loads(run("inspect", str(pdf), "--json").stdout)
    assert data["form"] == "consultation"
    assert [p["code"] for p in data["problems"]] == ["contact_email_invalid", "preferred_dates_missing"]
    assert data["valid"] is False


def test_inspect_says_clearly_when_ocr_is_unavailable(tmp_path):
    """GIVEN a scanned form and a machine where tesseract cannot be found
    WHEN inspected
    THEN exit 2 with the error code ocr_unavailable (not 'not a form', not a crash)."""
    import os

    from mailbot.forms.scan import simulate_scan

    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(simulate_scan(render_application(sample_values()), dpi=150))
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    result = subprocess.run([*CLI, "inspect", str(pdf), "--json"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "ocr_unavailable"


def test_reprocess_refuses_an_unknown_id_clearly(tmp_path):
    config = tmp_path / "config.toml"
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///data/mailbot.db"', f'url = "sqlite:///{tmp_path / "m.db"}"')
    text = text.replace('rules_dir = "rules"', f'rules_dir = "{ROOT / "rules"}"')
    text = text.replace('templates_dir = "templates"', f'templates_dir = "{ROOT / "templates"}"')
    config.write_text(text, encoding="utf-8")
    cli = [sys.executable, "-m", "mailbot.cli", "--config", str(config)]
    result = subprocess.run([*cli, "reprocess", "4242"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no stored message with id 4242" in result.stderr
    listing = subprocess.run([*cli, "quarantined"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "0 quarantined" in listing.stdout
    held = subprocess.run([*cli, "held", "--release", "nobody@example.jp"], capture_output=True,
                          text=True, timeout=60)
    assert held.returncode == 0 and "nobody@example.jp: was not held" in held.stdout


def _config_with_database(tmp_path) -> tuple[list[str], str]:
    """A config for this checkout with its own SQLite database; (the CLI, the database URL)."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///data/mailbot.db"', f'url = "{url}"')
    text = text.replace('rules_dir = "rules"', f'rules_dir = "{ROOT / "rules"}"')
    text = text.replace('templates_dir = "templates"', f'templates_dir = "{ROOT / "templates"}"')
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    return [sys.executable, "-m", "mailbot.cli", "--config", str(tmp_path / "config.toml")], url


def _store_mail(url: str) -> None:
    """Five processed messages of four classes and one quarantined, a minute apart (uid 1 oldest)."""
    from datetime import datetime, timedelta, timezone

    from sqlmodel import Session

    from mailbot.db import make_engine
    from mailbot.models import RawMessage

    start = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)
    rows = [("application", "tanaka@example.co.jp", "申請書の提出", "application form"),
            ("question", "kato@example.jp", "申請資格についての質問", "a mail from a person, no attachment"),
            ("automatic", "takahashi@example.jp", "自動応答: 受付", "out_of_office: Auto-Submitted: auto-replied"),
            ("question", "yamada@example.jp", "対象地域について", "a mail from a person, no attachment"),
            ("junk", "info@ads.example.com", "未承諾広告※セミナー", "Subject: 未承諾広告※セミナー"),
            (None, "broken@example.jp", None, None)]
    with Session(make_engine(url)) as session:
        for uid, (mail_class, sender, subject, reason) in enumerate(rows, 1):
            session.add(RawMessage(folder="INBOX", uidvalidity=1, uid=uid, arrived_at=start + timedelta(minutes=uid),
                                   size=1, sha256=str(uid), raw=b"x", mail_class=mail_class, sender=sender,
                                   subject=subject, reason=reason,
                                   status="processed" if mail_class else "quarantined",
                                   error=None if mail_class else "ParseError: no sender address in From:"))
        session.commit()


def test_messages_lists_recent_mail_newest_first_and_by_class(tmp_path):
    """GIVEN six stored messages (application, questions, out-of-office, spam, one quarantined)
    WHEN staff run `mailbot messages`
    THEN they see them newest first with class, sender, subject and reason; --class narrows; --limit cuts."""
    cli, url = _config_with_database(tmp_path)
    _store_mail(url)
    everything = json.loads(subprocess.run([*cli, "messages", "--json"], capture_output=True, text=True,
                                           timeout=60).stdout)
    assert [row["class"] for row in everything] == ["quarantined", "junk", "question", "automatic",
                                                    "question", "application"]
    assert set(everything[0]) == {"id", "arrived_at", "class", "sender", "subject", "reason"}
    assert everything[0]["reason"] == "ParseError: no sender address in From:"
    assert everything[1]["subject"] == "未承諾広告※セミナー"
    questions = json.loads(subprocess.run([*cli, "messages", "--class", "question", "--json"],
                                          capture_output=True, text=True, timeout=60).stdout)
    assert [q["sender"] for q in questions] == ["yamada@example.jp", "kato@example.jp"]
    text = subprocess.run([*cli, "messages", "--limit", "2"], capture_output=True, text=True, timeout=60)
    assert text.returncode == 0 and text.stdout.rstrip().endswith("2 message(s)")
    assert "未承諾広告※セミナー" in text.stdout and "申請書の提出" not in text.stdout


def test_messages_refuses_a_class_that_does_not_exist(tmp_path):
    cli, _url = _config_with_database(tmp_path)
    result = subprocess.run([*cli, "messages", "--class", "other"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--class must be one of application, consultation" in result.stderr


def test_status_counts_the_mail_by_class(tmp_path):
    cli, url = _config_with_database(tmp_path)
    _store_mail(url)
    data = json.loads(subprocess.run([*cli, "status", "--json"], capture_output=True, text=True, timeout=60).stdout)
    assert data["mail"] == {"application": 1, "consultation": 0, "documents": 0, "question": 2,
                            "automatic": 1, "junk": 1, "quarantined": 1, "waiting": 0}
    text = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=60).stdout
    assert "mail: application: 1  consultation: 0  documents: 0  question: 2  automatic: 1  junk: 1" in text
