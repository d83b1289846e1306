"""Two programs in one deployment, end to end: two Dovecot mailboxes, one SMTP sink, one config
with [[programs]], one daemon. Each reply is its own program's (From, signature, reception
prefix, template), the caps are independent, each digest lists only its own applications, one
mailbox being down does not stop the other, and `mailbot run` as a real process answers both."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from apscheduler.schedulers.background import BackgroundScheduler
from sqlmodel import Session, select
from typer.testing import CliRunner

from mailbot import PROJECT_ROOT, daemon, digest, samples
from mailbot.cli import app
from mailbot.config import ImapSettings, load_programs
from mailbot.forms.fill import corporate_number, render_application, sample_values
from mailbot.models import Application, OutboxMessage
from mailbot.services import build_all
from tests import dovecot as dovecot_server
from tests.e2e.conftest import MailboxDriver
from tests.e2e.test_daemon_process import (EXIT_SECONDS, DaemonProcess, Notifications, free_port,
                                           scrape)

TS_FROM, DESIGN_FROM = "chizai@example.jp", "design@example.jp"
TS_SIGNATURE = "ジェトロ知的財産課 営業秘密チーム"
DESIGN_SIGNATURE = "ジェトロ知的財産課 デザイン保護チーム"
DESIGN_NAME = "デザイン保護支援事業"
DESIGN_MARK = "デザイン保護支援事業の専用窓口からのお知らせです。"  # only design's receipt template says it

# Three companies; A applies to both programs (each program's own database: no duplicate).
A = ("a@alpha-seiki.example.jp", "株式会社アルファ精機", "010401000011")
B = ("b@beta-kogyo.example.jp", "ベータ工業株式会社", "010401000022")
C = ("c@gamma-design.example.jp", "ガンマデザイン株式会社", "010401000033")


def application(company: tuple[str, str, str]) -> bytes:
    sender, name, base12 = company
    values = sample_values(company_name=name, corporate_number=corporate_number(base12), contact_email=sender)
    return samples.application_mail(render_application(values), sender=sender)


def config_text(ts: ImapSettings, design: ImapSettings, smtp_port: int, workdir: Path, idle: bool) -> str:
    """The shared sections once; each program its mailbox, sender, database, cap, prefix, signature."""
    today = date.today()
    return f"""\
[imap]
host = "127.0.0.1"
port = {ts.port}
security = "none"
timeout_seconds = 10
idle = {'true' if idle else 'false'}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from_name = "ジェトロ"

[program]
opens = {today - timedelta(days=30)}
closes = {today + timedelta(days=60)}

[service]
poll_seconds = 1
rules_dir = "{PROJECT_ROOT / 'rules'}"
templates_dir = "{PROJECT_ROOT / 'templates'}"

[[programs]]
id = "ts"
[programs.imap]
username = "{ts.username}"
[programs.smtp]
from_address = "{TS_FROM}"
[programs.database]
url = "sqlite:///{workdir / 'ts.db'}"
[programs.program]
cap = 1
signature = "{TS_SIGNATURE}"
[programs.staff]
digest_to = ["ts-staff@example.jp"]

[[programs]]
id = "design"
[programs.imap]
username = "{design.username}"
[programs.smtp]
from_address = "{DESIGN_FROM}"
[programs.database]
url = "sqlite:///{workdir / 'design.db'}"
[programs.program]
name = "{DESIGN_NAME}"
cap = 5
reception_prefix = "DS"
signature = "{DESIGN_SIGNATURE}"
[programs.service]
templates_dir = "design-templates"
[programs.staff]
digest_to = ["design-staff@example.jp"]
"""


def design_templates(workdir: Path) -> None:
    """design's own templates: the shipped ones, its receipt with one more line."""
    shutil.copytree(PROJECT_ROOT / "templates", workdir / "design-templates")
    receipt = workdir / "design-templates" / "ja" / "receipt.txt.j2"
    text = receipt.read_text(encoding="utf-8")
    receipt.write_text(text.replace("このたびは", f"{DESIGN_MARK}\nこのたびは", 1), encoding="utf-8")


@pytest.fixture
def deployment(dovecot, smtp_sink, tmp_path):
    """Two mailboxes (two Dovecot users) and the config file naming them; returns a namespace."""
    ts = dovecot.settings(dovecot.new_user("progts"))
    design = dovecot.settings(dovecot.new_user("progdesign"))
    design_templates(tmp_path)

    def write(idle: bool = False) -> Path:
        path = tmp_path / "config.toml"
        path.write_text(config_text(ts, design, smtp_sink.port, tmp_path, idle), encoding="utf-8")
        return path

    class Deployment:
        pass

    found = Deployment()
    found.ts, found.design, found.write = ts, design, write
    found.environ = {"MAILBOT_PROGRAMS__TS__IMAP__PASSWORD": ts.password,
                     "MAILBOT_PROGRAMS__DESIGN__IMAP__PASSWORD": design.password}
    return found


@pytest.fixture
def services(deployment):
    """Both programs' services (one shared PDF reader pool), in the config's order: ts, design."""
    every = build_all(load_programs(deployment.write(), deployment.environ))
    yield every
    every[0].read_form.close(timeout=5)


def one_daemon_cycle(every) -> daemon.Daemon:
    """One cycle of the daemon serving both programs, run here (no scheduler thread)."""
    service = daemon.Daemon(every, BackgroundScheduler(timezone="Asia/Tokyo"))
    service.gate.run()
    for program in service.programs:
        program.drop_connection()  # the kept IMAP logins: no cycle follows
    return service


def rows(services, model) -> list:
    with Session(services.engine) as session:
        return list(session.exec(select(model).order_by(model.id)).all())


def body(mail) -> str:
    return mail.message.get_body(("plain",)).get_content()


def test_one_cycle_answers_both_mailboxes_each_as_its_own_program(deployment, services, smtp_sink, caplog):
    """GIVEN ts (cap 1): A then B; design (cap 5, prefix DS, its own template): A then C
    WHEN one daemon cycle runs
    THEN every reply carries its program's From, signature, prefix and template; ts waitlists B
    while design admits both; each program's data, digest and log lines are its own."""
    ts, design = services
    MailboxDriver(deployment.ts).deliver(application(A))
    MailboxDriver(deployment.ts).deliver(application(B))
    MailboxDriver(deployment.design).deliver(application(A))
    MailboxDriver(deployment.design).deliver(application(C))
    with caplog.at_level(logging.INFO):
        one_daemon_cycle(services)

    replies = smtp_sink.wait_for(4, timeout=30)
    by_from = {}
    for mail in replies:
        by_from.setdefault(mail.message["From"].addresses[0].addr_spec, []).append(mail)
    assert sorted(by_from) == sorted([TS_FROM, DESIGN_FROM])
    for mail in by_from[TS_FROM]:
        text, subject = body(mail), str(mail.message["Subject"])
        assert TS_SIGNATURE in text and DESIGN_SIGNATURE not in text and DESIGN_MARK not in text
        assert "TS-" in subject and "DS-" not in subject and DESIGN_NAME not in subject
    for mail in by_from[DESIGN_FROM]:
        text, subject = body(mail), str(mail.message["Subject"])
        assert DESIGN_SIGNATURE in text and TS_SIGNATURE not in text and DESIGN_MARK in text
        assert "DS-" in subject and "TS-" not in subject and DESIGN_NAME in subject

    # The caps are each program's: ts (cap 1) waitlists B, design (cap 5) queues both.
    assert [(a.company_name, a.state) for a in rows(ts, Application)] == [(A[1], "queued"), (B[1], "waitlisted")]
    assert [(a.company_name, a.state) for a in rows(design, Application)] == [(A[1], "queued"), (C[1], "queued")]
    assert [a.reception_number.split("-")[0] for a in rows(design, Application)] == ["DS", "DS"]
    assert [m.kind for m in rows(ts, OutboxMessage)] == ["receipt", "waitlisted"]
    assert [m.kind for m in rows(design, OutboxMessage)] == ["receipt", "receipt"]
    assert {to for mail in by_from[TS_FROM] for to in mail.rcpt_tos} == {A[0], B[0]}
    assert {to for mail in by_from[DESIGN_FROM] for to in mail.rcpt_tos} == {A[0], C[0]}

    # Each program's digest lists its own applications only.
    ts_digest, design_digest = digest.preview(ts).text, digest.preview(design).text
    assert B[1] in ts_digest and C[1] not in ts_digest and "DS-" not in ts_digest
    assert C[1] in design_digest and B[1] not in design_digest and "TS-" not in design_digest

    # The processed and cycle lines name their program.
    processed = [r for r in caplog.records if r.getMessage() == "processed"]
    assert sorted(r.fields["program"] for r in processed) == ["design", "design", "ts", "ts"]
    cycles = [r for r in caplog.records if r.getMessage().startswith("cycle:")]
    assert [(r.fields["program"], r.fields["processed"]) for r in cycles] == [("ts", 2), ("design", 2)]


def test_one_mailbox_down_does_not_stop_the_other_program(deployment, services, smtp_sink, caplog):
    """GIVEN ts's IMAP server out of reach, an application in design's mailbox
    WHEN one daemon cycle runs
    THEN design's applicant is answered, ts's failed poll is logged under ts."""
    ts, _design = services
    ts.settings = ts.settings.model_copy(update={"imap": ts.settings.imap.model_copy(
        update={"port": dovecot_server.free_port()})})
    MailboxDriver(deployment.design).deliver(application(C))
    with caplog.at_level(logging.INFO):
        service = one_daemon_cycle(services)
    [reply] = smtp_sink.wait_for(1, timeout=30)
    assert reply.message["From"].addresses[0].addr_spec == DESIGN_FROM
    failed = [r for r in caplog.records if r.getMessage() == "poll failed"]
    assert [r.fields["program"] for r in failed] == ["ts"]
    assert service.programs[0].last.poll is None and service.programs[1].last.poll.processed == 1


def test_one_database_down_does_not_stop_the_other_program(deployment, services, smtp_sink, caplog):
    """GIVEN ts's database server not answering, an application in each mailbox
    WHEN one daemon cycle runs
    THEN design's applicant is answered; ts's cycle failure is logged under ts, its mail stays."""
    ts, _design = services
    ts.engine = sqlalchemy.create_engine(f"postgresql+psycopg://mailbot@127.0.0.1:{free_port()}/mailbot")
    MailboxDriver(deployment.ts).deliver(application(A))
    MailboxDriver(deployment.design).deliver(application(C))
    with caplog.at_level(logging.INFO):
        service = one_daemon_cycle(services)
    [reply] = smtp_sink.wait_for(1, timeout=30)
    assert reply.message["From"].addresses[0].addr_spec == DESIGN_FROM and reply.rcpt_tos == [C[0]]
    [failed] = [r for r in caplog.records if r.getMessage() == "cycle failed"]
    assert failed.fields["program"] == "ts" and "OperationalError" in failed.fields["error"]
    assert MailboxDriver(deployment.ts).count("INBOX") == 1  # left for the next cycle, not lost
    assert service.programs[0].last is None and service.programs[1].last.sent == 1


def test_run_once_serves_every_program(deployment, smtp_sink, monkeypatch):
    """`mailbot run --once` polls, processes and sends for each program, one line each."""
    for name, value in deployment.environ.items():
        monkeypatch.setenv(name, value)
    MailboxDriver(deployment.ts).deliver(application(A))
    MailboxDriver(deployment.design).deliver(application(C))
    result = CliRunner().invoke(app, ["--config", str(deployment.write()), "run", "--once"])
    assert result.exit_code == 0, result.output
    counts = [line for line in result.output.splitlines() if line.startswith("program=")]
    assert counts == ["program=ts stored=1 processed=1 moved=1 sent=1 retried=0 failed=0",
                      "program=design stored=1 processed=1 moved=1 sent=1 retried=0 failed=0"]
    assert len(smtp_sink.wait_for(2, timeout=30)) == 2


def test_program_option_shows_one_programs_applications(deployment, services, smtp_sink, monkeypatch):
    """GIVEN both programs after a cycle
    WHEN staff run `mailbot applications --json` with and without --program
    THEN each --program lists its own applications; without it the command stops (exit 2) naming both."""
    MailboxDriver(deployment.ts).deliver(application(B))
    MailboxDriver(deployment.design).deliver(application(C))
    one_daemon_cycle(services)
    for name, value in deployment.environ.items():
        monkeypatch.setenv(name, value)
    runner, config_path = CliRunner(), str(deployment.write())
    listed = {}
    for program in ("ts", "design"):
        result = runner.invoke(app, ["--config", config_path, "applications", "--json", "--program", program])
        assert result.exit_code == 0, result.output
        listed[program] = [row["company_name"] for row in json.loads(result.output)]
    assert listed == {"ts": [B[1]], "design": [C[1]]}
    refused = runner.invoke(app, ["--config", config_path, "applications"])
    assert refused.exit_code == 2 and "several programs (ts, design)" in refused.output


def test_the_daemon_process_answers_both_mailboxes(deployment, smtp_sink, tmp_path, monkeypatch):
    """GIVEN `mailbot run` as systemd runs it, IDLE on, each program's password only in its own
    MAILBOT_PROGRAMS__<ID>__IMAP__PASSWORD (the shared MAILBOT_IMAP__PASSWORD empty)
    WHEN an application arrives in each mailbox
    THEN each is answered from its program's address, and SIGTERM stops the daemon with exit 0."""
    for name, value in deployment.environ.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    config_path = deployment.write(idle=True)
    config_path.write_text(config_path.read_text(encoding="utf-8").replace(
        "poll_seconds = 1", f'poll_seconds = 1\nlog_format = "json"\nmetrics_port = {port}'), encoding="utf-8")
    notifications = Notifications()
    process = DaemonProcess(config_path, notifications, password="")
    try:
        process.start()
        MailboxDriver(deployment.ts).deliver(application(A))
        MailboxDriver(deployment.design).deliver(application(C))
        replies = smtp_sink.wait_for(2, timeout=60)
        assert sorted((m.message["From"].addresses[0].addr_spec, m.rcpt_tos[0]) for m in replies) == \
            sorted([(TS_FROM, A[0]), (DESIGN_FROM, C[0])])
        numbers = scrape(port)  # one endpoint, each program's numbers from its own database
        assert numbers["mailbot_queue_length{'program': 'ts'}"] == 1
        assert numbers["mailbot_queue_length{'program': 'design'}"] == 1
        assert numbers["mailbot_cap{'program': 'ts'}"] == 1 and numbers["mailbot_cap{'program': 'design'}"] == 5
        code, seconds = process.stop()
        assert (code, seconds < EXIT_SECONDS) == (0, True), process.log
    finally:
        process.kill()
        notifications.close()
    lines = [json.loads(line) for line in process.log.splitlines()]
    assert sorted(line["program"] for line in lines if line["msg"] == "processed") == ["design", "ts"]
    assert {line["program"] for line in lines if line["msg"].startswith("cycle:")} == {"ts", "design"}
    # Each mailbox's IDLE watcher (a thread of its own) names its program too.
    watchers = [line.get("program") for line in lines if line["msg"].startswith("IDLE watcher connected")]
    assert sorted(watchers) == ["design", "ts"], watchers
    assert deployment.ts.password not in process.log
