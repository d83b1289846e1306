"""mailbot.logs: each format on real log calls through the root logger, as the daemon writes them.

What is checked is the text on stderr: one line per record, JSON that parses,
key=value that reads back to the same values, tracebacks on one line, secrets
never printed, Japanese kept readable.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shlex
import sys
from datetime import date

import pytest

from mailbot import PROJECT_ROOT, config, logs

PASSWORD = "Kagi-7f3Q!pw"  # the IMAP password of the settings below
SMTP_PASSWORD = "smtp secret 2026"  # with spaces: scrubbed whole
COMPANY = "株式会社サンプル精機"

log = logging.getLogger("mailbot.test_logs")


@pytest.fixture(autouse=True)
def root_logger():
    """Leave the root logger as the test found it (level, and no handler of ours)."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h.formatter, (
            logs.TextFormatter, logs.KeyValueFormatter, logs.JsonFormatter))]:
        root.removeHandler(handler)
    root.setLevel(level)


def settings() -> config.Settings:
    data = {
        "imap": {"host": "127.0.0.1", "port": 1, "username": "chizai", "password": PASSWORD,
                 "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": 1, "security": "none", "from_address": "chizai@example.jp",
                 "username": "chizai", "password": SMTP_PASSWORD},
        "program": {"opens": date(2026, 5, 27), "closes": date(2027, 1, 31)},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"), "templates_dir": str(PROJECT_ROOT / "templates")},
    }
    return config.validate(data, base_dir=PROJECT_ROOT, origin="test")


def lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def log_a_failure() -> None:
    try:
        raise ValueError(f"IMAP LOGIN refused for chizai\nserver said: NO [AUTHENTICATIONFAILED] {PASSWORD}")
    except ValueError:
        log.exception("poll failed for %s", "INBOX")


KV_PAIR = re.compile(r'(?P<key>[^\s=]+)=(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s"]*))')
UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def parse_keyvalue(line: str) -> dict[str, str]:
    """A logfmt reader written from the format's description, not from logs.py's code."""
    pairs = {}
    position = 0
    for match in KV_PAIR.finditer(line):
        assert line[position:match.start()].strip() == "", f"unparsed text in {line!r}"
        position = match.end()
        quoted = match.group("quoted")
        pairs[match.group("key")] = match.group("bare") if quoted is None else re.sub(
            r"\\(u[0-9a-f]{4}|U[0-9a-f]{8}|.)",
            lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] in "uU" else UNESCAPE[m.group(1)], quoted)
    assert line[position:].strip() == "", f"unparsed text in {line!r}"
    return pairs


# --- one line per record -------------------------------------------------------------


def test_json_is_one_object_per_line_with_the_fields(capsys):
    logs.configure("json")
    logs.event(log, "processed", message=12, uid=40, **{"class": "application"}, verdict="queued",
               reception_number="TS-2026-0001", reply=["receipt"], absent=None)
    log.warning("plain %s with %d", "message", 2)
    first, second = (json.loads(line) for line in lines(capsys))
    assert {k: first[k] for k in ("level", "logger", "msg")} == {
        "level": "info", "logger": "mailbot.test_logs", "msg": "processed"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["ts"])
    assert (first["message"], first["uid"], first["class"], first["verdict"]) == (12, 40, "application", "queued")
    assert (first["reception_number"], first["reply"]) == ("TS-2026-0001", ["receipt"])
    assert "absent" not in first
    assert (second["level"], second["msg"]) == ("warning", "plain message with 2")


def test_keyvalue_reads_back_to_the_same_values(capsys):
    logs.configure("keyvalue")
    awkward = {"spaces": "a b  c", "quote": 'say "はい"', "equals": "a=b", "backslash": r"C:\data",
               "newline": "line one\nline two\r\n", "tab": "a\tb", "empty": "", "ideographic_space": "株式会社\u3000本社",
               "separator": "a\u2028b", "control": "bell\x07"}
    logs.event(log, "awkward values", number=7, flag=True, kinds=["receipt", "fix_request"], **awkward)
    [line] = lines(capsys)
    pairs = parse_keyvalue(line)
    assert {key: pairs[key] for key in awkward} == awkward
    assert (pairs["msg"], pairs["level"], pairs["logger"]) == ("awkward values", "info", "mailbot.test_logs")
    assert (pairs["number"], pairs["flag"], pairs["kinds"]) == ("7", "true", "receipt,fix_request")


def test_keyvalue_simple_values_split_like_a_shell_would(capsys):
    logs.configure("keyvalue")
    logs.event(log, "poll", folder="INBOX", stored=3, processed=3, moved=3, note="two words")
    [line] = lines(capsys)
    words = dict(word.split("=", 1) for word in shlex.split(line))
    assert (words["msg"], words["folder"], words["stored"], words["note"]) == ("poll", "INBOX", "3", "two words")


def test_text_keeps_the_old_format_and_adds_the_fields(capsys):
    logs.configure("text")
    logs.event(log, "processed", message=12, verdict="needs_fix", problems=["seal_missing"])
    [line] = lines(capsys)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO mailbot.test_logs processed "
                        r"message=12 verdict=needs_fix problems=seal_missing", line), line


def test_japanese_is_kept_readable_in_every_format(capsys):
    for log_format in logs.FORMATS:
        logs.configure(log_format)
        logs.event(log, "件名を受信", subject_kind="申請書")
        [line] = lines(capsys)
        assert "件名を受信" in line and "申請書" in line and "\\u" not in line, (log_format, line)


@pytest.mark.parametrize("log_format", ["keyvalue", "json"])
def test_an_exception_stays_on_one_line_with_its_traceback_as_a_field(capsys, log_format):
    logs.configure(log_format)
    log_a_failure()
    [line] = lines(capsys)
    fields = json.loads(line) if log_format == "json" else parse_keyvalue(line)
    assert fields["msg"] == "poll failed for INBOX" and fields["level"] == "error"
    assert fields["error"].startswith("ValueError: IMAP LOGIN refused for chizai\nserver said")
    assert fields["traceback"].startswith("Traceback (most recent call last):\n")
    assert "in log_a_failure" in fields["traceback"]


def test_text_shows_the_traceback_below_the_line_for_a_person(capsys):
    logs.configure("text")
    log_a_failure()
    output = lines(capsys)
    assert output[0].endswith("ERROR mailbot.test_logs poll failed for INBOX")
    assert output[1] == "Traceback (most recent call last):"


def test_configure_again_replaces_its_handler_instead_of_adding_one(capsys):
    logs.configure("text")
    logs.configure("json", verbose=True)
    log.debug("once")
    [line] = lines(capsys)
    assert json.loads(line)["msg"] == "once"
    with pytest.raises(ValueError, match="log format 'xml'"):
        logs.configure("xml")


# --- secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", logs.FORMATS)
def test_the_configured_passwords_are_never_printed(capsys, log_format):
    logs.configure(log_format, secrets=logs.secrets_of(settings()))
    log.info("login as chizai with %s", PASSWORD)
    log.error("SMTP AUTH refused: %s", SMTP_PASSWORD)
    logs.event(log, "connect", detail=f"LOGIN chizai {PASSWORD}", server_reply=[SMTP_PASSWORD])
    log_a_failure()
    output = capsys.readouterr().err
    assert PASSWORD not in output and SMTP_PASSWORD not in output
    assert output.count(logs.REDACTED) >= 5, output  # the traceback line shows the source, not the value
    assert "login as chizai with [redacted]" in output


@pytest.mark.parametrize("log_format", logs.FORMATS)
def test_secret_looking_fields_and_assignments_are_blanked(capsys, log_format):
    logs.configure(log_format)
    logs.event(log, "oauth", password="x1", client_secret="x2", refresh_token="x3", Authorization="x4",
               folder="INBOX")
    log.warning("retrying with password=hunter2, token: 'abc def' and Authorization: Bearer eyJhbGciOi.J9")
    output = capsys.readouterr().err
    for secret in ("x1", "x2", "x3", "x4", "hunter2", "abc def", "eyJhbGciOi"):
        assert secret not in output, (secret, output)
    assert "INBOX" in output and "retrying with password=" in output


def test_a_password_in_the_settings_is_found_for_scrubbing():
    assert set(logs.secrets_of(settings())) == {PASSWORD, SMTP_PASSWORD}


def test_the_handler_writes_to_stderr_as_it_is_now_not_as_it_was(capsys, monkeypatch):
    """The command line's test runner configures logging with its own stderr, then closes it."""
    runner_stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", runner_stderr)
    logs.configure("json")
    monkeypatch.undo()
    runner_stderr.close()
    log.info("after the runner")
    [line] = lines(capsys)
    assert json.loads(line)["msg"] == "after the runner"
