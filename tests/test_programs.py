"""Several programs in one config ([[programs]]): what each program gets, what is refused and
how it is said, secrets per program from the environment, and `--program` on the command line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailbot import PROJECT_ROOT, programs
from mailbot.cli import app
from mailbot.config import DEFAULT_PROGRAM, ProgramChoiceError, choose, load, load_programs
from mailbot.errors import ConfigError

SHARED = f"""
[imap]
host = "imap.example.jp"
username = "chizai@example.jp"
[smtp]
host = "smtp.example.jp"
from_address = "chizai@example.jp"
from_name = "ジェトロ知的財産課"
[database]
url = "sqlite:///data/ts.db"
[program]
opens = 2026-05-27
closes = 2027-01-31
cap = 18
[staff]
digest_to = ["chizai-staff@example.jp"]
[service]
poll_seconds = 30
rules_dir = "{PROJECT_ROOT / 'rules'}"
templates_dir = "{PROJECT_ROOT / 'templates'}"
"""

TS = """
[[programs]]
id = "ts"
"""

DESIGN = """
[[programs]]
id = "design"
[programs.imap]
username = "design@example.jp"
[programs.smtp]
from_address = "design@example.jp"
[programs.database]
url = "sqlite:///data/design.db"
[programs.program]
name = "デザイン保護支援事業"
cap = 5
reception_prefix = "DS"
[programs.staff]
digest_to = ["design-staff@example.jp", "chizai-staff@example.jp"]
[programs.service]
templates_dir = "design-templates"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def two_programs(tmp_path: Path, environ: dict[str, str] | None = None):
    return load_programs(write(tmp_path, SHARED + TS + DESIGN), environ or {})


def test_each_program_is_the_shared_sections_with_its_own_keys_over_them(tmp_path):
    found = two_programs(tmp_path)
    assert list(found) == ["ts", "design"]
    ts, design = found["ts"], found["design"]
    assert (ts.program_id, design.program_id) == ("ts", "design")
    # ts gives nothing of its own: the shared sections as written.
    assert (ts.imap.username, ts.smtp.from_address, ts.program.cap, ts.program.reception_prefix) == \
        ("chizai@example.jp", "chizai@example.jp", 18, "TS")
    # design replaces single keys; the keys it does not give stay the shared ones.
    assert (design.imap.username, design.imap.host) == ("design@example.jp", "imap.example.jp")
    assert (design.smtp.from_address, design.smtp.from_name) == ("design@example.jp", "ジェトロ知的財産課")
    assert (design.program.name, design.program.cap, design.program.opens.isoformat()) == \
        ("デザイン保護支援事業", 5, "2026-05-27")
    assert design.staff.digest_to == ["design-staff@example.jp", "chizai-staff@example.jp"]
    assert ts.staff.digest_to == ["chizai-staff@example.jp"]
    # Relative paths are the config folder's, for every program.
    assert design.database_url == f"sqlite:///{tmp_path / 'data' / 'design.db'}"
    assert design.path(design.service.templates_dir) == tmp_path / "design-templates"
    assert ts.path(ts.service.templates_dir) == PROJECT_ROOT / "templates"
    assert design.service.poll_seconds == ts.service.poll_seconds == 30


def test_a_file_without_programs_is_one_program_as_before(tmp_path):
    found = load_programs(write(tmp_path, SHARED), environ={})
    assert list(found) == [DEFAULT_PROGRAM]
    assert found[DEFAULT_PROGRAM].imap.username == "chizai@example.jp"
    assert load(write(tmp_path, SHARED), environ={}) == found[DEFAULT_PROGRAM]


def test_the_shipped_config_is_one_program():
    assert list(load_programs(PROJECT_ROOT / "config.toml", environ={})) == [DEFAULT_PROGRAM]


def test_secrets_of_one_program_come_from_its_own_variables(tmp_path):
    environ = {"MAILBOT_IMAP__PASSWORD": "shared-secret",
               "MAILBOT_PROGRAMS__DESIGN__IMAP__PASSWORD": "design-secret",
               "MAILBOT_PROGRAMS__DESIGN__SMTP__PASSWORD": "design-smtp",
               "MAILBOT_PROGRAMS__TS__PROGRAM__CAP": "3"}
    found = two_programs(tmp_path, environ)
    assert (found["ts"].imap.password, found["ts"].smtp.password, found["ts"].program.cap) == \
        ("shared-secret", "", 3)
    assert (found["design"].imap.password, found["design"].smtp.password, found["design"].program.cap) == \
        ("design-secret", "design-smtp", 5)


@pytest.mark.parametrize("name, message", [
    ("MAILBOT_PROGRAMS__DESING__IMAP__PASSWORD",
     r"environment MAILBOT_PROGRAMS__DESING__IMAP__PASSWORD: no program 'desing' in config.toml "
     r"\(programs: ts, design\)"),
    ("MAILBOT_PROGRAMS__DESIGN__IMAP__PASWORD",
     r"environment MAILBOT_PROGRAMS__DESIGN__IMAP__PASWORD: unknown key \[imap\] pasword"),
    ("MAILBOT_PROGRAMS__DESIGN__SERVICE__PDF_WORKERS",
     r"program design: \[service\] pdf_workers is shared by every program"),
])
def test_a_wrong_program_variable_is_refused_naming_it(tmp_path, name, message):
    with pytest.raises(ConfigError, match=message):
        two_programs(tmp_path, {name: "4"})


def test_a_program_variable_without_programs_in_the_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"no program 'ts' in config.toml \(programs: none: it has no "):
        load_programs(write(tmp_path, SHARED), {"MAILBOT_PROGRAMS__TS__IMAP__PASSWORD": "x"})


@pytest.mark.parametrize("change, what", [
    ('url = "sqlite:///data/design.db"', "[database] url"),
    ('username = "design@example.jp"', "mailbox (chizai@example.jp on imap.example.jp:993, folder INBOX)"),
    ('from_address = "design@example.jp"', "[smtp] from_address (chizai@example.jp)"),
    ('reception_prefix = "DS"', "[program] reception_prefix (TS)"),
])
def test_two_programs_on_one_resource_are_refused_naming_both(tmp_path, change, what):
    """GIVEN design written as ts on one of database, mailbox, sender, reception prefix
    THEN the start is refused, the message naming both programs and what they share."""
    same = DESIGN.replace(change, "")
    with pytest.raises(ConfigError) as refused:
        load_programs(write(tmp_path, SHARED + TS + same), environ={})
    assert f"config.toml: programs ts and design have the same {what}" in str(refused.value)
    assert "each program needs its own" in str(refused.value)


def test_two_programs_on_one_oauth2_token_file_are_refused(tmp_path):
    """Each mailbox's refresh token rotates in its token file: one file for two would lose one."""
    oauth2 = ('\n[oauth2]\nflow = "refresh_token"\nclient_id = "app"\nscope = "https://mail.google.com/"\n')
    both = (SHARED.replace("[smtp]", 'auth = "oauth2"\n[smtp]', 1) + oauth2 + TS + DESIGN)
    with pytest.raises(ConfigError, match=r"programs ts and design have the same \[oauth2\] token_file \(.*"
                                          r"data/oauth2-token.json\)"):
        load_programs(write(tmp_path, both), environ={})
    own_file = both + '[programs.oauth2]\ntoken_file = "data/design-token.json"\n'
    assert load_programs(write(tmp_path, own_file), environ={})["design"].imap.auth == "oauth2"


def test_the_same_address_differing_in_case_is_the_same_mailbox(tmp_path):
    shouted = DESIGN.replace('username = "design@example.jp"', 'username = "CHIZAI@example.jp"')
    with pytest.raises(ConfigError, match="programs ts and design have the same mailbox"):
        load_programs(write(tmp_path, SHARED + TS + shouted), environ={})


def test_one_login_with_two_folders_is_two_mailboxes(tmp_path):
    """A server rule may sort one address into folders: each folder can be a program of its own."""
    own_folder = DESIGN.replace('username = "design@example.jp"', 'username = "chizai@example.jp"\nfolder = "Design"')
    found = load_programs(write(tmp_path, SHARED + TS + own_folder), environ={})
    assert found["design"].imap.folder == "Design" and found["ts"].imap.folder == "INBOX"


def test_a_postgresql_password_is_not_shown_in_the_refusal(tmp_path):
    shared_pg = SHARED.replace('url = "sqlite:///data/ts.db"', 'url = "postgresql+psycopg://mb:hunter22@db/mb"')
    same = DESIGN.replace('url = "sqlite:///data/design.db"', "")
    with pytest.raises(ConfigError) as refused:
        load_programs(write(tmp_path, shared_pg + TS + same), environ={})
    assert "[database] url (postgresql+psycopg://mb:***@db/mb)" in str(refused.value)
    assert "hunter22" not in str(refused.value)


@pytest.mark.parametrize("entry, message", [
    ('\n[[programs]]\nid = "TS"\n', r"\[\[programs\]\] number 2: id must be lower-case letters"),
    ('\n[[programs]]\nid = "a__b"\n', r"number 2: id must be"),
    ('\n[[programs]]\n[programs.imap]\nusername = "x@example.jp"\n', r"number 2: id must be .*\(got None\)"),
    ('\n[[programs]]\nid = "ts"\n', r"two \[\[programs\]\] have the id 'ts'"),
    ('\n[[programs]]\nid = "default"\n', r"number 2: the id 'default' is kept for a config without"),
    ('\n[[programs]]\nid = "x"\n[programs.program]\ncap = "many"\n',
     r"config.toml: program x: \[program\] cap: .*integer.*'many'"),
    ('\n[[programs]]\nid = "x"\n[programs.imap]\nhots = "y"\n', r"config.toml: program x: unknown key \[imap\] hots"),
    ('\n[[programs]]\nid = "x"\n[programs.service]\npoll_seconds = 5\n',
     r"config.toml: program x: \[service\] poll_seconds is shared by every program .*top-level \[service\]"),
    ('\n[[programs]]\nid = "x"\n[programs.oauth2]\nclient_secret = "s"\n',
     r"config.toml: program x: \[oauth2\] client_secret is a secret: remove it from the file"),
])
def test_a_bad_program_entry_is_refused_naming_the_program_and_key(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=message):
        load_programs(write(tmp_path, SHARED + TS + entry), environ={})


def test_programs_must_be_tables(tmp_path):
    with pytest.raises(ConfigError, match=r"programs must be a list of \[\[programs\]\] tables"):
        load_programs(write(tmp_path, 'programs = ["ts"]\n' + SHARED), environ={})


def test_choosing_a_program(tmp_path):
    found = two_programs(tmp_path)
    assert choose(found, "design") is found["design"]
    with pytest.raises(ProgramChoiceError, match=r"several programs \(ts, design\): name one with --program ID"):
        choose(found)
    with pytest.raises(ProgramChoiceError, match=r"no program 'nope' in the config \(programs: ts, design\)"):
        choose(found, "nope")
    alone = load_programs(write(tmp_path, SHARED), environ={})
    assert choose(alone) is alone[DEFAULT_PROGRAM]


def test_lines_logged_while_working_on_a_program_name_it(caplog):
    log = logging.getLogger("mailbot.test_programs")
    with caplog.at_level(logging.INFO):
        programs.label_log_lines()
        with programs.working_on("design"):
            log.info("processed", extra={"fields": {"message": 12}})
        log.info("between programs")
    during, after = caplog.records[-2:]
    assert during.fields == {"program": "design", "message": 12}
    assert getattr(after, "fields", None) in (None, {})


# --- The command line ----------------------------------------------------------------------


@pytest.fixture
def cli_config(tmp_path) -> Path:
    """Two programs on two fresh databases (SQLite files, or PostgreSQL with --database postgresql)."""
    shared = SHARED.replace("sqlite:///data/ts.db", f"sqlite:///{tmp_path / 'ts.db'}")
    design = DESIGN.replace("sqlite:///data/design.db", f"sqlite:///{tmp_path / 'design.db'}").replace(
        'templates_dir = "design-templates"', f'templates_dir = "{PROJECT_ROOT / "templates"}"')
    return write(tmp_path, shared + TS + design)


def mailbot(config: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(config), *args], env={})


def test_a_staff_command_needs_program_when_there_are_several(cli_config):
    result = mailbot(cli_config, "applications")
    assert result.exit_code == 2
    assert "several programs (ts, design): name one with --program ID" in result.output


def test_an_unknown_program_stops_with_exit_2_naming_the_ids(cli_config):
    result = mailbot(cli_config, "applications", "--program", "nope")
    assert result.exit_code == 2
    assert "no program 'nope' in the config (programs: ts, design)" in result.output


def test_program_picks_the_programs_own_data(cli_config):
    result = mailbot(cli_config, "status", "--json", "--program", "design")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["cap"]["limit"] == 5
    result = mailbot(cli_config, "status", "--json", "--program", "ts")
    assert json.loads(result.output)["cap"]["limit"] == 18


def test_health_checks_every_program_and_names_each(cli_config):
    result = mailbot(cli_config, "health")
    assert result.exit_code == 1  # nothing was ever polled
    assert "PROBLEM  program ts: mailbox INBOX: no poll has ever succeeded" in result.output
    assert "PROBLEM  program design: mailbox INBOX: no poll has ever succeeded" in result.output
    one = mailbot(cli_config, "health", "--program", "design")
    assert "program design" in one.output and "program ts" not in one.output


def test_db_upgrade_upgrades_every_programs_database(cli_config):
    result = mailbot(cli_config, "db", "upgrade")
    assert result.exit_code == 0, result.output
    upgraded = [line for line in result.output.splitlines() if "database schema:" in line]
    assert [line.split(":")[0] for line in upgraded] == ["ts", "design"]
    current = mailbot(cli_config, "db", "current", "--program", "design")
    assert current.exit_code == 0 and current.output.startswith("design: current: ")
