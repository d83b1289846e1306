"""Two `mailbot run` instances on one PostgreSQL database and one mailbox, one of them killed
again and again (issue 7 items 2 and 5).

Both run on the same config during a burst: one polls the folder while it holds the
folder's advisory lock (mailbot.instances), both send from the outbox (each row claimed by
one). At random points of the burst a random one of the two is killed with SIGKILL; the
survivor alone must carry the burst on (PostgreSQL ends the dead one's session, and its
lock with it), before the killed one is started again. Afterwards, as for one instance:
every mail stored once, one application per company in arrival order, one distinct receipt
per company, resends at most one per kill.
"""

from __future__ import annotations

import dataclasses
import random
import time

import pytest

from tests.chaos.conftest import (burst, database, maildir_of, next_target, one_receipt_each, patience,
                                  preload, progress, queue_in_arrival_order, stored_once,
                                  wait_for_progress)

pytestmark = pytest.mark.postgresql_only
#: The survivor's next poll finds the lock free: a cycle a second, a login, a few steps.
TAKE_OVER_SECONDS = 60
#: Mails at the least: a burst that outlasts a restarted instance's start-up (~2-4 s), so
#: that it comes up while the other still polls and the two take turns (60 mails are read
#: and answered in ~4 s: a run could end before any instance found the folder taken).
MIN_N = 200


def test_two_instances_one_killed_at_random_points_the_other_carries_on_nothing_done_twice(
        storm, dovecot, imap_settings, mailbox, smtp_sink, daemons, tmp_path):
    storm = dataclasses.replace(storm, n=max(storm.n, MIN_N))
    preload(maildir_of(dovecot, imap_settings.username), imap_settings, burst(storm.n))
    daemons.configure(imap_settings, smtp_sink.port, cap=storm.n)
    engine = database(tmp_path)
    steps = 4 * storm.n
    began = time.monotonic()
    pair, kills = kill_one_at_random_points(daemons, engine, storm)
    wait_for_progress(engine, steps, pair[0], timeout=patience(storm.n))
    for daemon in pair:
        daemon.wait_for_log_count("cycle: ", daemon.log.count("cycle: ") + 2)
    wall = time.monotonic() - began
    assert [daemon.stop() for daemon in pair] == [0, 0]

    stored_once(engine, storm.n)
    queue_in_arrival_order(engine, storm.n)
    assert (mailbox.count("INBOX"), mailbox.count(imap_settings.processed_folder)) == (0, storm.n)
    resends = one_receipt_each(engine, smtp_sink, storm.n)
    assert resends <= kills, f"{resends} resends for {kills} kills"
    logs = "".join(daemon.log for daemon in daemons.started)
    assert "another instance is polling the folder" in logs  # they did take turns
    print(f"chaos two-instances n={storm.n} kills={kills} resends={resends} wall_s={wall:.1f} "
          f"seed={storm.seed}")


def kill_one_at_random_points(daemons, engine, storm) -> tuple[list, int]:
    """Two daemons; at each random point one of them, chosen at random, is killed, the other
    must take the burst a step further alone, then the killed one starts again. The pair
    running at the end, and the kills done (fewer if the burst was over before)."""
    rng = random.Random(storm.seed)
    steps = 4 * storm.n
    pair = [daemons.start(), daemons.start()]
    for daemon in pair:  # both at work before the first kill (see below)
        daemon.wait_for_log_count("scheduler started: ready", 1)
    for number in range(1, storm.kills + 1):
        if (before := progress(engine).steps) >= steps:
            return pair, number - 1
        target = next_target(rng, before, steps, storm.kills - number + 1)
        wait_for_progress(engine, target, pair[0], timeout=patience(storm.n))
        time.sleep(rng.uniform(0, 0.05))
        victim = rng.randrange(2)
        pair[victim].kill9()
        if (at := progress(engine)).steps < steps:  # the survivor alone takes the burst further
            wait_for_progress(engine, at.steps + 1, pair[1 - victim], timeout=TAKE_OVER_SECONDS)
        print(f"kill {number}: instance {victim} at {at}; the other went on to {progress(engine)}")
        pair[victim] = daemons.start()
        # The next kill must find it at work, not still starting: at ~20 mails a second the
        # next random point can come within its start-up, and the survivor would do it all.
        pair[victim].wait_for_log_count("scheduler started: ready", 1)
    return pair, storm.kills
