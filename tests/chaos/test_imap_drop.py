"""The IMAP connection dropped in the middle of a large fetch (issue 7 item 5).

Large applications (each with a bulky second attachment) wait in the inbox: the first
poll fetches them 100 at a time, 20 MB per FETCH. As soon as the first ones are stored (the
poll's fetch under way: its first batch being stored, the next FETCH to come), the
connection goes: Dovecot kicks the user (BYE, then EOF), or Dovecot itself is stopped
and started again a few seconds later. The poll fails on the fetch, the daemon stays up and
logs in again on a later cycle; in the end every mail is stored once and answered once.
"""

from __future__ import annotations

import random
import time
from email.parser import BytesParser
from email.policy import SMTP

import pytest

from tests import dovecot as dovecot_server
from tests.chaos.conftest import (START_SECONDS, database, maildir_of, one_receipt_each, preload,
                                  progress, queue_in_arrival_order, stored_once, wait_for_progress)
from tests.e2e.test_daemon_process import RestartableDovecot, burst_mail

MAILS = 150  # two FETCH batches of mailbot.intake.imap.BATCH (100)
BROCHURE_BYTES = 200 * 1024  # each mail carries this much more than its form
DOWN_SECONDS = 3


def bulky(i: int, rng: random.Random) -> bytes:
    """Company i's application with a brochure attached: a fetch that takes a while."""
    msg = BytesParser(policy=SMTP).parsebytes(burst_mail(i)[1])
    msg.add_attachment(rng.randbytes(BROCHURE_BYTES), maintype="application", subtype="octet-stream",
                       filename="会社案内.dat")
    return msg.as_bytes(policy=SMTP)


@pytest.fixture
def own_dovecot():
    """A Dovecot of this test's own, since it is stopped and started (the session's serves the rest)."""
    try:
        server = RestartableDovecot()
    except dovecot_server.DovecotUnavailable as exc:
        pytest.fail(f"{exc} — run `.ci/setup --test` to install it")
    server.start()
    yield server
    server.stop()


def drop_kick(server: RestartableDovecot, username: str) -> None:
    dovecot_server.kick(server, username)


def drop_restart(server: RestartableDovecot, _username: str) -> None:
    server.halt()
    time.sleep(DOWN_SECONDS)  # a few failed polls, one a second
    server.resume()


@pytest.mark.parametrize("drop", [drop_kick, drop_restart], ids=["doveadm-kick", "dovecot-restart"])
def test_imap_connection_dropped_mid_fetch_the_daemon_resumes_nothing_lost_or_answered_twice(
        drop, own_dovecot, smtp_sink, daemons, tmp_path):
    imap = own_dovecot.settings(own_dovecot.new_user("drop"))
    rng = random.Random(MAILS)
    preload(maildir_of(own_dovecot, imap.username), imap, [bulky(i, rng) for i in range(MAILS)])
    daemons.configure(imap, smtp_sink.port, cap=MAILS)
    engine = database(tmp_path)
    daemon = daemons.start()

    at = wait_for_progress(engine, 1, daemon, timeout=START_SECONDS)
    drop(own_dovecot, imap.username)
    print(f"dropped at {at}, after: {progress(engine)}")
    wait_for_progress(engine, 4 * MAILS, daemon, timeout=600)
    daemon.wait_for_log("cycle: 0 new, 0 processed, 0 moved; 0 sent")

    # The drop hit the first poll's fetch, and the same process carried on.
    assert "poll failed" in daemon.log and "fetch failed" in daemon.log, daemon.log[-5000:]
    assert daemon.stop() == 0, daemon.log[-5000:]
    stored_once(engine, MAILS)
    queue_in_arrival_order(engine, MAILS)
    assert one_receipt_each(engine, smtp_sink, MAILS) == 0  # and none sent twice
