"""kill -9 of `mailbot run` at random points of an opening-day burst, again and again (issue 7 item 5).

N applications from N companies wait in the inbox (written into the Maildir, one second
apart). A daemon is started and killed with SIGKILL once the burst has gone a random number
of steps further (a step: one mail stored, processed, moved out of the inbox, or its reply
sent, so kills land in every phase of a cycle; the point is drawn from the work left, so
the K kills spread over the whole burst), K times; then one more daemon finishes the work.
No signal handler runs on SIGKILL: what survives is only what each transaction committed.
Afterwards every mail is stored once and processed, one application per company, in arrival
order; each company has exactly one receipt (a resend after a kill between the server's "250"
and the row marked sent repeats the same Message-ID, and happens at most once per kill); and
none of the killed daemons' PDF readers lives on.
"""

from __future__ import annotations

import random
import time

from mailbot.forms.sandbox import ORPHAN_CHECK_SECONDS
from tests.chaos.conftest import (burst, database, maildir_of, next_target, one_receipt_each, patience,
                                  preload, progress, queue_in_arrival_order, stored_once,
                                  wait_for_progress, wait_until_gone)

#: A reader killed mid-PDF finishes it (well under a second here), then notices its parent
#: is gone within ORPHAN_CHECK_SECONDS.
ORPHAN_GRACE_SECONDS = 3 * ORPHAN_CHECK_SECONDS


def test_kill_9_at_random_points_of_a_burst_loses_nothing_and_answers_each_company_once(
        storm, dovecot, imap_settings, mailbox, smtp_sink, daemons, tmp_path):
    preload(maildir_of(dovecot, imap_settings.username), imap_settings, burst(storm.n))
    daemons.configure(imap_settings, smtp_sink.port, cap=storm.n)
    engine = database(tmp_path)
    began = time.monotonic()
    kills, readers = kill_at_random_points(daemons, engine, storm)
    last = daemons.start()
    wait_for_progress(engine, 4 * storm.n, last, timeout=patience(storm.n))
    last.wait_for_log("cycle: 0 new, 0 processed, 0 moved; 0 sent")  # and nothing more comes
    wall = time.monotonic() - began
    assert last.stop() == 0, last.log[-5000:]

    stored_once(engine, storm.n)
    queue_in_arrival_order(engine, storm.n)
    assert (mailbox.count("INBOX"), mailbox.count(imap_settings.processed_folder)) == (0, storm.n)
    resends = one_receipt_each(engine, smtp_sink, storm.n)
    assert resends <= kills, f"{resends} resends for {kills} kills"
    orphans = wait_until_gone(readers, ORPHAN_GRACE_SECONDS)
    assert not orphans, f"PDF readers of killed daemons still running: {sorted(orphans)}"
    print(f"chaos kill9 n={storm.n} kills={kills} resends={resends} readers_killed_with="
          f"{len(readers)} wall_s={wall:.1f} seed={storm.seed}")


def kill_at_random_points(daemons, engine, storm) -> tuple[int, set[tuple[int, int]]]:
    """Start a daemon, SIGKILL it at the next random point, storm.kills times; the kills
    done (fewer if the burst was over before) and the processes the killed daemons had forked."""
    rng = random.Random(storm.seed)
    steps = 4 * storm.n  # stored, processed, moved, sent: each N at the end
    readers: set[tuple[int, int]] = set()
    for number in range(1, storm.kills + 1):
        if (before := progress(engine).steps) >= steps:
            return number - 1, readers
        target = next_target(rng, before, steps, storm.kills - number + 1)
        daemon = daemons.start()
        reached = wait_for_progress(engine, target, daemon, timeout=patience(storm.n))
        time.sleep(rng.uniform(0, 0.05))  # anywhere in the step after the target (sends take ~10 ms)
        readers |= daemon.kill9()
        print(f"kill {number}: target {target} steps, reached {reached}, after: {progress(engine)}")
    return storm.kills, readers
