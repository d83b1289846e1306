"""Config: the shipped config.toml is valid; errors name the key; the environment overrides."""

from pathlib import Path

import pytest

from mailbot.config import load
from mailbot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """
[imap]
host = "imap.example.jp"
username = "u"
[smtp]
host = "smtp.example.jp"
from_address = "chizai@example.jp"
[program]
opens = 2026-05-27
closes = 2027-01-31
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_config_is_valid():
    settings = load(ROOT / "config.toml", environ={})
    assert settings.imap.security == "tls"
    assert settings.program.cap == 18
    assert settings.database_url == f"sqlite:///{ROOT / 'data' / 'mailbot.db'}"


def test_every_key_of_the_shipped_config_is_commented():
    lines = (ROOT / "config.toml").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.startswith(("#", " ", '"')) and line[0].isalpha():
            assert lines[number - 1].startswith("#"), f"config.toml line {number + 1} has no comment: {line}"


def test_defaults_fill_what_is_not_given(tmp_path):
    settings = load(write(tmp_path, MINIMAL), environ={})
    assert settings.imap.port == 993 and settings.imap.folder == "INBOX"
    assert settings.program.cap == 18


def test_a_wrong_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"\[imap\] port: .*integer.*'abc'"):
        load(write(tmp_path, MINIMAL.replace('username = "u"', 'username = "u"\nport = "abc"')), environ={})


def test_a_missing_value_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"missing required value \[smtp\] from_address"):
        load(write(tmp_path, MINIMAL.replace('from_address = "chizai@example.jp"', "")), environ={})


def test_an_unknown_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key \[imap\] hots"):
        load(write(tmp_path, MINIMAL.replace("[imap]", '[imap]\nhots = "x"')), environ={})


def test_a_bad_security_value_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\[smtp\] security"):
        load(write(tmp_path, MINIMAL + '\n'), environ={"MAILBOT_SMTP__SECURITY": "ssl"})


def test_environment_overrides_the_file(tmp_path):
    environ = {"MAILBOT_IMAP__PASSWORD": "s3cret", "MAILBOT_IMAP__PORT": "143",
               "MAILBOT_PROGRAM__CAP": "5", "MAILBOT_STAFF__DIGEST_TO": "a@x.jp, b@x.jp"}
    settings = load(write(tmp_path, MINIMAL), environ=environ)
    assert settings.imap.password == "s3cret" and settings.imap.port == 143
    assert settings.program.cap == 5
    assert settings.staff.digest_to == ["a@x.jp", "b@x.jp"]


def test_an_unknown_environment_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"MAILBOT_IMAP__PASWORD: unknown key \[imap\] pasword"):
        load(write(tmp_path, MINIMAL), environ={"MAILBOT_IMAP__PASWORD": "x"})


def test_closing_before_opening_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\[program\] closes"):
        load(write(tmp_path, MINIMAL.replace("closes = 2027-01-31", "closes = 2026-01-01")), environ={})


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "nope.toml", environ={})
