"""The opening-day burst: N applications at once, answered in arrival order (issue 7).

    .venv/bin/python bench/burst.py [--n 1000] [--workers 2] [--pdf-workers 2] [--profile FILE]

Everything runs on this machine: a throwaway Dovecot (tests/dovecot.py, as
the tests start it), an aiosmtpd SMTP sink in a child process of its own
(mailbot.sink.SinkProcess: it keeps only how many mails came and to whom, so
this process is the service alone), a SQLite database in a temp dir, the
shipped rules and templates.

1. N stamped application PDFs from N different companies are made (files in
   the temp dir; each distinct: company name, corporate number, address), wrapped in mails and
   written straight into the Maildir (../shared/notes/test-mail-servers.md),
   one second apart in arrival time (the file's mtime is Dovecot's
   INTERNALDATE, the clock that orders the queue).
2. The service runs its cycle (poll, process, send: ``daemon.run_once``)
   until the folder is drained and the sink holds one reply per company;
   its PDF readers are ``--pdf-workers`` warm sandboxed processes
   (``[service] pdf_workers``), reading ahead of the message in hand.
3. The same PDFs are parsed bare by pdfplumber (text of every page) on
   ``--workers`` processes: the yardstick of the ratio (the service reads
   a form's text with pdfium first, so its readers can cost less than this).
   Half of them just before the service runs, the other half just after:
   this machine's CPU speed drifts by a third over minutes, and a yardstick
   taken all before or all after the service would carry that drift into
   the ratio whole. Both halves' times are printed.
4. Printed: wall time, applications/s, the CPU per application of the
   service, of its PDF readers and of everything else on the machine, how
   much of the time the cores were idle, the bare parse time, their ratio, the
   peak RSS of this process (the service; PDF readers and the SMTP sink are
   children and reported apart), and whether the queue order equals the
   arrival order.

``--profile FILE`` runs the service's cycles under cProfile and writes their
pstats to FILE (the thread that runs them: neither the PDF readers nor a
thread the cycle starts, such as the outbox sent alongside the poll, are in
it; read it with ``python -m pstats FILE``). Its clock is that thread's CPU
time (time.thread_time): waiting for a PDF reader, the database's lock or
the GIL counts for nothing, so what it shows is what the service's own code
costs. Profiling slows the service: its timings are then not the ones to
compare.

Goals (issue 7): ratio <= 1.25, order exact, RSS <= 300 MB at 10,000.
The last line is fixed, for comparing runs:

    burst n=N wall_s=X apps_per_s=Y parse_ratio=R order=exact|wrong rss_mb=M
"""

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout, for tests/

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import pdfplumber  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from mailbot import PROJECT_ROOT, config, daemon, samples  # noqa: E402
from mailbot.forms.fill import corporate_number, render_application, sample_values  # noqa: E402
from mailbot.intake.imap import Mailbox  # noqa: E402
from mailbot.models import Application  # noqa: E402
from mailbot.services import Services, build  # noqa: E402
from mailbot.sink import SinkProcess  # noqa: E402
from tests.dovecot import Dovecot  # noqa: E402

USER = "burst"


def make_services(dovecot: Dovecot, sink_port: int, workdir: Path, n: int, pdf_workers: int = 2) -> Services:
    """The program open today with room for all N: the queue order is the thing measured."""
    today = date.today()
    data = {
        "imap": dovecot.settings(USER).model_dump(),
        "smtp": {"host": "127.0.0.1", "port": sink_port, "security": "none",
                 "from_address": "chizai@example.jp"},
        "database": {"url": f"sqlite:///{workdir / 'burst.db'}"},
        "program": {"opens": today - timedelta(days=1), "closes": today + timedelta(days=60), "cap": n},
        "service": {"poll_seconds": 3600, "rules_dir": str(PROJECT_ROOT / "rules"),
                    "templates_dir": str(PROJECT_ROOT / "templates"),
                    "max_replies_per_recipient": 10, "pdf_workers": pdf_workers},
    }
    return build(config.validate(data, base_dir=workdir, origin="bench"))


def company_pdf(i: int) -> bytes:
    """Company number i's stamped application PDF (distinct bytes for every i)."""
    values = sample_values(company_name=f"株式会社バースト{i:05d}", contact_email=sender(i),
                           corporate_number=corporate_number(f"{800000000000 + i:012d}"))
    return render_application(values)


def sender(i: int) -> str:
    return f"tanto{i}@burst{i}.example.jp"


def preload(dovecot: Dovecot, services: Services, pdfs: list[Path]) -> None:
    """Every mail written into Maildir new/, company i arriving i seconds after the first, in one go.

    The first arrives an hour and N seconds ago: after the program opened, before now."""
    first = int(time.time()) - 3600 - len(pdfs)
    with Mailbox(services.settings.imap) as box:
        box.select()  # Dovecot creates the Maildir on first access
    maildir = dovecot.base / "mail" / USER / "Maildir"
    account = dovecot.account
    for i, pdf in enumerate(pdfs):
        name = f"{first + i}.M{i}P1.burst"
        tmp, new = maildir / "tmp" / name, maildir / "new" / name
        tmp.write_bytes(samples.application_mail(pdf.read_bytes(), sender=sender(i)))
        os.utime(tmp, (first + i, first + i))
        os.chown(tmp, account.uid, account.gid)
        tmp.rename(new)


def serve_until_answered(services: Services, sink: SinkProcess, n: int, timeout: float,
                         profiler: cProfile.Profile | None = None) -> float:
    """Seconds the service takes, cycle after cycle, until every company has its reply.

    With ``profiler``, only the cycles run under it: not the bench's own waiting."""
    started = time.monotonic()
    while (arrived := sink.tally().mails) < n:
        report = profiler.runcall(daemon.run_once, services) if profiler else daemon.run_once(services)
        if report.poll is None:
            raise RuntimeError("the poll failed: see the log")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{arrived} of {n} replies after {timeout:.0f} s")
    return time.monotonic() - started


def bare_parse(pdfs: list[Path], workers: int) -> float:
    """Seconds pdfplumber alone takes to extract the text of every PDF on ``workers`` processes.

    The workers read the files: the bench process never holds the PDFs (its peak RSS is the service's).
    """
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_text_of, pdfs, chunksize=16))
    return time.monotonic() - started


def _text_of(path: Path) -> int:
    with pdfplumber.open(io.BytesIO(path.read_bytes())) as doc:
        return sum(len(page.extract_text() or "") for page in doc.pages)


def queue_in_arrival_order(services: Services, n: int) -> bool:
    """The queue, by position, is company 0, 1, 2, ... N-1: first come, first served.

    The names only: 10,000 whole applications (fields, seal) loaded here would
    raise this process's peak RSS, which is reported as the service's."""
    with Session(services.engine) as session:
        names = session.exec(select(Application.company_name).where(Application.position.is_not(None))
                             .order_by(Application.position)).all()
    return list(names) == [f"株式会社バースト{i:05d}" for i in range(n)]


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(t) for t in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    per_second = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:8]) - idle) / per_second, idle / per_second


def peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="applications (default 1,000)")
    parser.add_argument("--workers", type=int, default=2, help="processes of the bare parse (default 2)")
    parser.add_argument("--pdf-workers", type=int, default=2,
                        help="the service's PDF reader processes, [service] pdf_workers (default 2)")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="write the pstats of the service's cycles (this process) to FILE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    dovecot = Dovecot().start()
    try:
        with tempfile.TemporaryDirectory(prefix="burst") as workdir, SinkProcess() as sink:
            report(args, dovecot, sink, Path(workdir))
    finally:
        dovecot.stop()


def make_pdfs(n: int, folder: Path) -> list[Path]:
    """The N PDFs as files: the service's peak RSS must not count the bench holding them all."""
    made = time.monotonic()
    folder.mkdir()
    paths = [folder / f"{i:05d}.pdf" for i in range(n)]
    for i, path in enumerate(paths):
        path.write_bytes(company_pdf(i))
    print(f"made {n} PDFs in {time.monotonic() - made:.1f} s (not measured)", flush=True)
    return paths


def report(args, dovecot: Dovecot, sink: SinkProcess, workdir: Path) -> None:
    services = make_services(dovecot, sink.port, workdir, args.n, args.pdf_workers)
    pdf_files = make_pdfs(args.n, workdir / "pdf")
    preload(dovecot, services, pdf_files)
    # The yardstick brackets the service (see 3. above): even-numbered PDFs now, odd ones after.
    parse_before = bare_parse(pdf_files[0::2], args.workers)
    yardstick_rss = peak_rss_mb(resource.RUSAGE_CHILDREN)
    profiler = cProfile.Profile(time.thread_time) if args.profile else None  # CPU, not waits
    cpu_before = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    machine_before = machine_cpu()
    wall = serve_until_answered(services, sink, args.n, args.timeout, profiler)
    machine = [after - before for after, before in zip(machine_cpu(), machine_before)]
    # The PDF readers, once stopped and reaped, count among this process's children.
    services.read_form.close(timeout=60)
    cpu = (cpu_seconds(resource.RUSAGE_SELF) - cpu_before[0],
           cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_before[1])
    order = "exact" if queue_in_arrival_order(services, args.n) else "wrong"
    # The sink is still running: stopping (reaping) it now would add its CPU to the PDF readers'.
    answered = sink.tally()
    # Before the second half of the bare parse: its workers would count among the children.
    rss, children = peak_rss_mb(resource.RUSAGE_SELF), peak_rss_mb(resource.RUSAGE_CHILDREN)
    parse_after = bare_parse(pdf_files[1::2], args.workers)
    parse = parse_before + parse_after
    print(f"service: {args.n} applications in {wall:.1f} s, {answered.recipients} distinct recipients "
          f"answered, {answered.mails} mails; queue order {order}", flush=True)
    print(f"CPU per application: service {cpu[0] / args.n * 1000:.0f} ms, PDF readers "
          f"{cpu[1] / args.n * 1000:.0f} ms ({services.settings.service.pdf_workers} processes), everything else on "
          f"the machine (Dovecot, the SMTP sink, ...) {(machine[0] - sum(cpu)) / args.n * 1000:.0f} ms; "
          f"the machine's cores idle {machine[1] / sum(machine):.0%} of the time", flush=True)
    sink_rss = sink.stop().peak_rss_mb
    print(f"bare pdfplumber on {args.workers} processes: {parse:.1f} s ({parse_before:.1f} s for half "
          f"before the service, {parse_after:.1f} s for the other half after)", flush=True)
    # The kernel keeps one peak for all reaped children: the PDF readers' and the first half's workers'.
    print(f"peak RSS: service {rss:.0f} MB, largest child {children:.0f} MB (a PDF reader, or one of "
          f"pdfplumber's workers before the service: they peaked at {yardstick_rss:.0f} MB), "
          f"SMTP sink {sink_rss:.0f} MB", flush=True)
    if profiler:
        profiler.dump_stats(args.profile)
        print(f"profile of the service's cycles: {args.profile} (python -m pstats)", flush=True)
    print(f"burst n={args.n} wall_s={wall:.1f} apps_per_s={args.n / wall:.1f} "
          f"parse_ratio={wall / parse:.2f} order={order} rss_mb={rss:.0f}")


if __name__ == "__main__":
    main()
