"""health.watch: one alert when no poll succeeded for [service] health_alert_minutes, one recovery notice.

Time is given with ``now=``; the poller's record of a good poll is written
into FolderState as the poller writes it. The mails go through the outbox
(tests/e2e/test_health.py sends them to a real SMTP server).
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from mailbot import PROJECT_ROOT, health, staff
from mailbot.db import transaction
from mailbot.models import FolderState, OutboxMessage
from tests.test_staff import STAFF, make_services

T0 = datetime(2026, 6, 1, 1, 0, tzinfo=timezone.utc)  # 10:00 in Tokyo
MINUTES = 30


@pytest.fixture
def services(tmp_path):
    return make_services(tmp_path, health_alert_minutes=MINUTES)


def good_poll(services, at: datetime) -> None:
    """What poller.record_poll leaves behind after a successful poll at ``at``."""
    with transaction(services.engine) as session:
        state = session.get(FolderState, "INBOX") or FolderState(folder="INBOX")
        state.uidvalidity, state.last_poll_at = 1, at
        session.add(state)


def healthy_minute(services, at: datetime) -> str | None:
    good_poll(services, at)
    return health.watch(services, now=at)


def notices(services) -> list[OutboxMessage]:
    with transaction(services.engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


def folder_state(services) -> FolderState | None:
    with transaction(services.engine) as session:
        return session.get(FolderState, "INBOX")


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def test_a_recent_good_poll_is_healthy(services):
    good_poll(services, T0)
    assert health.watch(services, now=T0 + minutes(MINUTES - 1), error="timeout") is None
    assert notices(services) == [] and folder_state(services).alerted_at is None


def test_one_alert_however_long_the_outage_then_one_recovery(services):
    good_poll(services, T0)
    refused = "connect 127.0.0.1:1: [Errno 111] Connection refused"
    events = [health.watch(services, now=T0 + minutes(m), error=refused) for m in range(1, 121)]
    assert events.count("alert") == 1 and events[MINUTES - 1] == "alert"
    [alert] = notices(services)
    assert alert.kind == staff.HEALTH_ALERT and alert.to_addrs == STAFF
    assert folder_state(services).alerted_at == T0 + minutes(MINUTES)
    for text in ["Connection refused", "2026年6月1日（月） 10:00", "30分", "mailbot run --once", "127.0.0.1:1"]:
        assert text in alert.body, text

    good_poll(services, T0 + minutes(125))
    assert health.watch(services, now=T0 + minutes(125)) == "recovered"
    assert [healthy_minute(services, T0 + minutes(m)) for m in range(126, 200)] == [None] * 74
    alert, recovery = notices(services)
    assert recovery.kind == staff.HEALTH_RECOVERED and recovery.to_addrs == STAFF
    assert recovery.in_reply_to == alert.message_id and recovery.references[0] == alert.references[0]
    for text in ["10:00", "12:05", "約2時間5分", "10:30"]:  # down from, back at, how long, when alerted
        assert text in recovery.body, text
    assert folder_state(services).alerted_at is None


def test_a_second_outage_gets_its_own_alert(services):
    good_poll(services, T0)
    assert health.watch(services, now=T0 + minutes(MINUTES)) == "alert"
    good_poll(services, T0 + minutes(40))
    assert health.watch(services, now=T0 + minutes(40)) == "recovered"
    assert health.watch(services, now=T0 + minutes(40 + MINUTES), error="login failed") == "alert"
    assert [n.kind for n in notices(services)] == [staff.HEALTH_ALERT, staff.HEALTH_RECOVERED,
                                                   staff.HEALTH_ALERT]
    assert "login failed" in notices(services)[-1].body


def test_the_last_known_error_is_given_when_the_alerting_attempt_has_none(services):
    good_poll(services, T0)
    health.watch(services, now=T0 + minutes(5), error="LOGIN failed: authentication failed")
    assert health.watch(services, now=T0 + minutes(MINUTES)) == "alert"
    assert "authentication failed" in notices(services)[0].body


def test_a_mailbox_never_polled_alerts_after_the_threshold_from_the_first_attempt(services):
    assert health.watch(services, now=T0, error="connection refused") is None
    assert health.watch(services, now=T0 + minutes(MINUTES - 1)) is None
    assert health.watch(services, now=T0 + minutes(MINUTES)) == "alert"
    [alert] = notices(services)
    assert "一度も受信できていません" in alert.body and "10:00" in alert.body
    state = folder_state(services)
    assert state.alerted_at == T0 + minutes(MINUTES) and state.last_poll_at is None
    good_poll(services, T0 + minutes(45))
    assert health.watch(services, now=T0 + minutes(45)) == "recovered"
    assert "約45分" in notices(services)[1].body


def test_an_alert_outstanding_before_a_restart_is_not_sent_again(services):
    good_poll(services, T0)
    assert health.watch(services, now=T0 + minutes(MINUTES)) == "alert"
    health._memory.clear()  # the daemon restarted during the outage
    assert health.watch(services, now=T0 + minutes(90)) is None
    good_poll(services, T0 + minutes(100))
    assert health.watch(services, now=T0 + minutes(100)) == "recovered"
    recovery = notices(services)[-1]
    assert "不明" in recovery.body and "11:40" in recovery.body and "None" not in recovery.body


def test_no_staff_address_logs_the_alert_and_mails_nothing(tmp_path, caplog):
    services = make_services(tmp_path, digest_to=[], health_alert_minutes=MINUTES)
    good_poll(services, T0)
    with caplog.at_level(logging.WARNING):
        assert health.watch(services, now=T0 + minutes(MINUTES)) == "alert"
    assert "no successful poll" in caplog.text and "digest_to" in caplog.text
    assert notices(services) == [] and folder_state(services).alerted_at is not None


def test_a_broken_alert_template_is_logged_and_tried_again_at_the_next_attempt(tmp_path, caplog):
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    (templates / "ja" / "staff_health_alert.txt.j2").write_text(
        "{% block subject %}{{ no_such_value }}{% endblock %}{% block body %}x{% endblock %}")
    broken = make_services(tmp_path, templates_dir=str(templates), health_alert_minutes=MINUTES)
    good_poll(broken, T0)
    with caplog.at_level(logging.ERROR, logger="mailbot.health"):
        assert health.watch(broken, now=T0 + minutes(MINUTES)) is None
    assert "no_such_value" in caplog.text
    assert notices(broken) == [] and folder_state(broken).alerted_at is None
    fixed = make_services(tmp_path, health_alert_minutes=MINUTES)  # the same database
    assert health.watch(fixed, now=T0 + minutes(MINUTES + 1)) == "alert"
    assert [n.kind for n in notices(fixed)] == [staff.HEALTH_ALERT]
