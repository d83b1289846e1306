"""kill -9 of `mailbot run` at random points of an opening-day burst, again and again (issue 7 item 5).

N applications from N companies wait in the inbox (written into the Maildir, one second
apart). A daemon is started, killed with SIGKILL when the burst has gone a random number of
steps (a step: one mail stored, processed, moved out of the inbox, or its reply sent; so
kills land in every phase of a cycle), K times; then one more daemon finishes the work. No
signal handler runs on SIGKILL: what survives is only what each transaction committed.
Afterwards every mail is stored once and processed, one application per company, in arrival
order; each company has exactly one receipt (a resend after a kill between the server's "250"
and the row marked sent repeats the same Message-ID, and happens at most once per kill); and
none of the killed daemons' PDF readers lives on.
"""

from __future__ import annotations

import random
import time

from sqlmodel import Session, select

from mailbot.forms.sandbox import ORPHAN_CHECK_SECONDS
from mailbot.models import OutboxMessage
from tests.chaos.conftest import (START_SECONDS, burst, database, maildir_of, preload, progress,
                                  queue_in_arrival_order, receipts_by_sender, sender, stored_once,
                                  wait_for_progress, wait_until_gone)

#: A reader killed mid-PDF finishes it (well under a second here), then notices its parent
#: is gone within ORPHAN_CHECK_SECONDS.
ORPHAN_GRACE_SECONDS = 3 * ORPHAN_CHECK_SECONDS
#: Reading, answering and sending one application at worst, on a loaded 2-core machine.
SECONDS_PER_MAIL = 2.0


def test_kill_9_at_random_points_of_a_burst_loses_nothing_and_answers_each_company_once(
        storm, dovecot, imap_settings, mailbox, smtp_sink, daemons, tmp_path):
    preload(maildir_of(dovecot, imap_settings.username), imap_settings, burst(storm.n))
    daemons.configure(imap_settings, smtp_sink.port, cap=storm.n)
    engine = database(tmp_path)
    rng = random.Random(storm.seed)
    steps = 4 * storm.n  # stored, processed, moved, sent: each N at the end
    patience = START_SECONDS + SECONDS_PER_MAIL * storm.n
    readers: set[tuple[int, int]] = set()
    began = time.monotonic()
    for number, target in enumerate(sorted(rng.sample(range(1, steps), storm.kills)), 1):
        daemon = daemons.start()
        reached = wait_for_progress(engine, target, daemon, timeout=patience)
        time.sleep(rng.uniform(0, 0.3))  # anywhere in the step after the target, too
        readers |= daemon.kill9()
        print(f"kill {number}: target {target} steps, reached {reached}, after: {progress(engine)}")
    last = daemons.start()
    wait_for_progress(engine, steps, last, timeout=patience)
    last.wait_for_log("cycle: 0 new, 0 processed, 0 moved; 0 sent")  # and nothing more comes
    wall = time.monotonic() - began
    assert last.stop() == 0, last.log[-5000:]

    stored_once(engine, storm.n)
    queue_in_arrival_order(engine, storm.n)
    assert (mailbox.count("INBOX"), mailbox.count(imap_settings.processed_folder)) == (0, storm.n)
    resends = one_receipt_each(engine, smtp_sink, storm.n)
    assert resends <= storm.kills, f"{resends} resends for {storm.kills} kills"
    orphans = wait_until_gone(readers, ORPHAN_GRACE_SECONDS)
    assert not orphans, f"PDF readers of killed daemons still running: {sorted(orphans)}"
    print(f"chaos kill9 n={storm.n} kills={storm.kills} resends={resends} readers_killed_with="
          f"{len(readers)} wall_s={wall:.1f} seed={storm.seed}")


def one_receipt_each(engine, smtp_sink, n: int) -> int:
    """Each company got exactly one distinct reply, the one its outbox row holds; how many
    times a reply was sent again (the same Message-ID a second time)."""
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage.to_addrs, OutboxMessage.message_id,
                                   OutboxMessage.kind, OutboxMessage.status)).all()
    assert len(rows) == n and {status for *_rest, status in rows} == {"sent"}, rows[:5]
    queued = {to[0]: message_id for to, message_id, _kind, _status in rows}
    received = receipts_by_sender(smtp_sink)
    assert received.keys() == {sender(i) for i in range(n)}
    twice = {address: ids for address, ids in received.items() if len(ids) != 1}
    assert not twice, f"companies with more than one distinct reply: {twice}"
    assert {address: next(iter(ids)) for address, ids in received.items()} == queued
    return sum(times - 1 for ids in received.values() for times in ids.values())
