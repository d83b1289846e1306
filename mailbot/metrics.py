"""The optional Prometheus endpoint (``[service] metrics_port``): what the service did, from its database.

Every number is read from the database at each scrape, none is kept in
memory: they are right after a restart, and the same whichever of several
instances is asked. The "counters" are counts of rows, so they only go up as
long as rows are not removed; two cases make one go down, which Prometheus
reads as a counter reset: ``mailbot reprocess`` (a quarantined mail leaves
the quarantine count) and a mail given up on that staff send again.

- ``mailbot_messages_total{class}``: inbound mail processed, by class
  (application, consultation, documents, question, automatic, junk), plus
  class="quarantined" (could not be processed) and class="duplicate" (the same
  mail stored again after the server renumbered its folder);
- ``mailbot_messages_unprocessed``: stored, not yet processed (a gauge: it goes down);
- ``mailbot_replies_sent_total{kind}``: mails sent, by template (receipt, fix_request...);
- ``mailbot_failures_total{what}``: "outbox" (mails given up on), "quarantine";
- gauges: ``mailbot_queue_length`` (queued, not yet adopted), ``mailbot_cap_used``
  (places held: queued, adopted and later), ``mailbot_cap``,
  ``mailbot_waitlist_length``, ``mailbot_outbox_pending``,
  ``mailbot_last_poll_age_seconds`` (+Inf when no poll ever succeeded, so an
  alert on "too old" fires);
- ``mailbot_up``: 1 when the database answered this scrape, else 0 and nothing else.

Every sample has a ``program`` label: the program's id (config ``[[programs]]``;
"default" for a one-program config). With several programs one endpoint
gives every program's numbers, each read from its own database; a program
whose database is away has ``mailbot_up{program=...} 0`` and no other sample.

The server listens on 127.0.0.1 only: the numbers are for a scraper on the
same machine (or a reverse proxy an operator sets up), never the network.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from mailbot import admission
from mailbot.errors import ConfigError
from mailbot.models import Application, FolderState, OutboxMessage, RawMessage
from mailbot.services import Services

log = logging.getLogger(__name__)

ADDRESS = "127.0.0.1"  # never 0.0.0.0: see the module docstring


@dataclass
class MetricsServer:
    """The running endpoint: where it listens, and ``stop()``."""

    httpd: WSGIServer
    thread: threading.Thread

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return host, port

    @property
    def port(self) -> int:
        return self.address[1]

    def stop(self) -> None:
        """Stop serving and close the socket (the thread ends with serve_forever)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(services: Services | Sequence[Services], port: int) -> MetricsServer:
    """Serve /metrics on 127.0.0.1:``port`` in a daemon thread (port 0: a free one, for tests).

    ``services``: one program's, or every program's (one endpoint, a ``program`` label).
    A port already taken is a ConfigError naming the setting: the operator asked for it.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(services))
    try:
        httpd, thread = start_http_server(port, addr=ADDRESS, registry=registry)
    except OSError as exc:
        raise ConfigError(f"[service] metrics_port = {port}: cannot listen on {ADDRESS}:{port}: "
                          f"{exc.strerror or exc}") from None
    server = MetricsServer(httpd, thread)
    log.info("metrics on http://%s:%d/metrics", *server.address)
    return server


class DatabaseCollector(Collector):
    """Reads every metric from each program's database at each scrape (see the module docstring)."""

    def __init__(self, services: Services | Sequence[Services]) -> None:
        self.programs = [services] if isinstance(services, Services) else list(services)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mailbot_up", "1 when the program's database answered this scrape.",
                               labels=["program"])
        families: dict[str, Metric] = {}
        for services in self.programs:
            try:
                metrics = self._read(services)
            except SQLAlchemyError as exc:
                # A scrape must answer: "down" is what the alert needs, not an HTTP 500;
                # the other programs' numbers are still given.
                log.warning("metrics: database of program %s unreachable: %s", services.program_id,
                            type(exc).__name__)
                metrics = None
            up.add_metric([services.program_id], 1 if metrics is not None else 0)
            _gather(families, metrics or [], services.program_id)
        yield up
        yield from families.values()

    def _read(self, services: Services) -> list[Metric]:
        with Session(services.engine) as session:
            messages, quarantined = _messages(session)
            outbox, failed = _outbox(session)
            return [*messages, *outbox, _failures(quarantine=quarantined, outbox=failed),
                    *_program(session, services), _last_poll_age(session, services)]


def _gather(families: dict[str, Metric], metrics: list[Metric], program: str) -> None:
    """One program's metrics into the families of every program, each sample labelled program=<id>."""
    for metric in metrics:
        samples = [sample._replace(labels={"program": program, **sample.labels}) for sample in metric.samples]
        if metric.name in families:
            families[metric.name].samples.extend(samples)
        else:
            metric.samples = samples
            families[metric.name] = metric


def _messages(session: Session) -> tuple[list[Metric], int]:
    """Inbound mail by class, and how many are quarantined."""
    rows = session.exec(select(RawMessage.status, RawMessage.mail_class, func.count()).group_by(
        RawMessage.status, RawMessage.mail_class)).all()
    by_class: dict[str, int] = {}
    unprocessed = 0
    for status, mail_class, count in rows:
        if status == "new":
            unprocessed += count
            continue
        label = mail_class if status == "processed" and mail_class else status
        by_class[label] = by_class.get(label, 0) + count
    messages = CounterMetricFamily("mailbot_messages", "Inbound mail processed, by class "
                                   "(quarantined: could not be processed).", labels=["class"])
    for label, count in sorted(by_class.items()):
        messages.add_metric([label], count)
    unprocessed_gauge = GaugeMetricFamily("mailbot_messages_unprocessed", "Stored, not yet processed.",
                                          value=unprocessed)
    return [messages, unprocessed_gauge], by_class.get("quarantined", 0)


def _outbox(session: Session) -> tuple[list[Metric], int]:
    """Mails sent by kind and pending, and how many were given up on."""
    rows = session.exec(select(OutboxMessage.status, OutboxMessage.kind, func.count()).group_by(
        OutboxMessage.status, OutboxMessage.kind)).all()
    sent = CounterMetricFamily("mailbot_replies_sent", "Mails sent, by template.", labels=["kind"])
    for status, kind, count in sorted(rows, key=lambda row: row[1]):
        if status == "sent":
            sent.add_metric([kind], count)
    failed = sum(count for status, _kind, count in rows if status == "failed")
    pending = sum(count for status, _kind, count in rows if status == "pending")
    return [sent, GaugeMetricFamily("mailbot_outbox_pending", "Mails waiting to be sent.", value=pending)], failed


def _failures(**counts: int) -> Metric:
    failures = CounterMetricFamily("mailbot_failures", "Failures: outbox (mails given up on), "
                                   "quarantine (mail that could not be processed).", labels=["what"])
    for what, count in counts.items():
        failures.add_metric([what], count)
    return failures


def _program(session: Session, services: Services) -> list[Metric]:
    states = dict(session.exec(select(Application.state, func.count()).group_by(Application.state)).all())
    return [
        GaugeMetricFamily("mailbot_queue_length", "Complete applications queued, not yet adopted.",
                          value=states.get("queued", 0)),
        GaugeMetricFamily("mailbot_cap_used", "Places held: queued, adopted and every later step.",
                          value=admission.places_taken(session)),
        GaugeMetricFamily("mailbot_cap", "The program's cap ([program] cap).", value=services.settings.program.cap),
        GaugeMetricFamily("mailbot_waitlist_length", "Complete applications on the waiting list.",
                          value=states.get("waitlisted", 0)),
    ]


def _last_poll_age(session: Session, services: Services) -> Metric:
    state = session.get(FolderState, services.settings.imap.folder)
    age = float("inf")
    if state is not None and state.last_poll_at is not None:
        age = (datetime.now(timezone.utc) - admission.as_utc(state.last_poll_at)).total_seconds()
    return GaugeMetricFamily("mailbot_last_poll_age_seconds",
                             "Seconds since the last successful poll (+Inf: never).", value=age)
