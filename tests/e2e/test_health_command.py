"""`mailbot health` through the command line against a real mailbox and database: 0 when the
service works, 1 with the reason when the mailbox has not been polled, mail failed or the
database is gone."""

from __future__ import annotations

import json
from datetime import timedelta

from typer.testing import CliRunner

from mailbot import daemon
from mailbot.cli import app as cli
from mailbot.db import transaction
from mailbot.models import FolderState, OutboxMessage, utcnow
from tests.e2e.test_schedule import write_config
from tests.e2e.test_step01 import application


def health(config_path: str):
    result = CliRunner().invoke(cli, ["--config", config_path, "health", "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_healthy_after_a_good_poll_then_unhealthy_for_each_reason(services, mailbox, smtp_sink, tmp_path):
    config_path = write_config(services.settings, tmp_path / "config.toml")
    code, report = health(config_path)
    assert code == 1 and report["problems"] == ["mailbox INBOX: no poll has ever succeeded"]

    mailbox.deliver(application())
    assert daemon.run_once(services).sent == 1
    code, report = health(config_path)
    assert (code, report["healthy"], report["problems"]) == (0, True, [])
    assert "outbox: 0 pending" in report["facts"] and "quarantine: 0 mail(s) kept for staff" in report["facts"]

    minutes = services.settings.service.health_alert_minutes
    with transaction(services.engine) as session:
        session.get(FolderState, "INBOX").last_poll_at = utcnow() - timedelta(minutes=minutes + 5)
        session.add(OutboxMessage(kind="receipt", to_addrs=["a@example.jp"], subject="s", body="b",
                                  message_id="<x@example.jp>", status="failed"))
    code, report = health(config_path)
    assert code == 1 and len(report["problems"]) == 2
    assert report["problems"][0].startswith("mailbox INBOX: last good poll 3") and f"more than {minutes} min" in report["problems"][0]
    assert report["problems"][1].startswith("outbox: 1 mail(s) failed")

    assert daemon.run_once(services).poll is not None  # the mailbox answers again
    code, report = health(config_path)
    assert code == 1 and [p.split(":")[0] for p in report["problems"]] == ["outbox"]


def test_a_database_that_cannot_be_opened_is_unhealthy(services, tmp_path):
    settings = services.settings
    broken = settings.model_copy(update={"database": settings.database.model_copy(
        update={"url": f"sqlite:///{tmp_path / 'missing-dir' / 'nope' / 'mailbot.db'}"})})
    config_path = write_config(broken, tmp_path / "config.toml")
    (tmp_path / "missing-dir").write_text("a file where the database folder should be")
    code, report = health(config_path)
    assert code == 1 and report["problems"][0].startswith("database unreachable: NotADirectoryError")


def test_three_failed_polls_in_a_row_are_unhealthy_with_the_servers_reason(services, mailbox, tmp_path):
    """GIVEN a good poll, then the mailbox's password changed under the service (Dovecot refuses it)
    WHEN one, then three cycles run, then the right password is back
    THEN one failure is reported as a fact (a blip), three make health exit 1 naming the refusal
    well before [service] health_alert_minutes; a good poll clears them."""
    from mailbot.services import build

    config_path = write_config(services.settings, tmp_path / "config.toml")
    assert daemon.run_once(services).poll is not None
    settings = services.settings
    refused = build(settings.model_copy(update={"imap": settings.imap.model_copy(update={"password": "wrong"})}))

    assert daemon.run_once(refused).poll is None
    code, report = health(config_path)
    assert code == 0 and any("the last 1 poll(s) failed" in fact for fact in report["facts"])

    daemon.run_once(refused), daemon.run_once(refused)
    code, report = health(config_path)
    [problem] = report["problems"]
    assert code == 1 and problem.startswith("mailbox INBOX: the last 3 poll(s) failed: ")
    assert "uthentication failed" in problem, problem  # Dovecot's own answer, not a guess

    assert daemon.run_once(services).poll is not None
    code, report = health(config_path)
    assert code == 0 and not any("failed" in line for line in report["facts"])
