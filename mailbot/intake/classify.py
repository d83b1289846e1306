"""Sort one parsed message: automatic mail, an application, or something for staff.

Automatic mail (RFC 3834: auto-replies, bounces, lists, robots) is decided
first and never answered, so that mailbot cannot start a mail loop. The lists
of header names, values and robot senders live in ``rules/triage.toml``
where staff can read and extend them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from mailbot import tomlfile
from mailbot.errors import PdfError, RulesError
from mailbot.forms.reading import FormReading
from mailbot.intake.message import Attachment, InboundMessage


@dataclass(frozen=True)
class ValueRule:
    """A header whose value marks automatic mail (``any_of``), or any value but ``unless``."""

    header: str
    any_of: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()

    def matches(self, value: str) -> bool:
        words = [w.lower() for w in re.split(r"[\s,;()]+", value) if w]
        if self.unless:  # RFC 3834 allows a comment after the keyword: judge the first word
            return not words or words[0] not in {u.lower() for u in self.unless}
        return bool(set(words) & {a.lower() for a in self.any_of})


@dataclass(frozen=True)
class Triage:
    """The automatic-mail rules read from rules/triage.toml."""

    presence_headers: tuple[str, ...] = ()
    value_rules: tuple[ValueRule, ...] = ()
    robot_senders: tuple[str, ...] = ()
    report_content_types: tuple[str, ...] = ()
    loop_headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Classification:
    """What the message is, why, and (for PDFs) what reading them gave."""

    mail_class: str  # "application" | "automatic" | "other"
    reason: str
    attachment: Attachment | None = None
    reading: FormReading | None = None
    pdf_error: PdfError | None = None


# --- loading the rules -----------------------------------------------------

_LISTS = ("presence_headers", "robot_senders", "report_content_types", "loop_headers")


def load_triage(path: Path) -> Triage:
    """Read and validate triage.toml; RulesError names the file and the key."""
    data = tomlfile.read(path, RulesError)
    unknown = set(data) - set(_LISTS) - {"value_rules"}
    if unknown:
        raise RulesError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    lists = {key: _strings(path, key, data.get(key, [])) for key in _LISTS}
    rules = data.get("value_rules", [])
    if not isinstance(rules, list):
        raise RulesError(f"{path}: value_rules: expected [[value_rules]] tables")
    return Triage(value_rules=tuple(_value_rule(path, i, r) for i, r in enumerate(rules)), **lists)


def _strings(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RulesError(f"{path}: {key}: expected a list of non-empty strings, got {value!r}")
    return tuple(v.strip() for v in value)


def _value_rule(path: Path, index: int, table: Any) -> ValueRule:
    where = f"value_rules[{index}]"
    if not isinstance(table, dict):
        raise RulesError(f"{path}: {where}: expected a table")
    unknown = set(table) - {"header", "any_of", "unless"}
    if unknown:
        raise RulesError(f"{path}: {where}: unknown key {sorted(unknown)[0]!r}")
    header = table.get("header")
    if not isinstance(header, str) or not header.strip():
        raise RulesError(f"{path}: {where}.header: expected a header name")
    if ("any_of" in table) == ("unless" in table):
        raise RulesError(f"{path}: {where} ({header}): give exactly one of any_of / unless")
    any_of = _strings(path, f"{where}.any_of", table.get("any_of", []))
    unless = _strings(path, f"{where}.unless", table.get("unless", []))
    return ValueRule(header=header.strip(), any_of=any_of, unless=unless)


# --- automatic mail --------------------------------------------------------


def automatic_reason(msg: InboundMessage, triage: Triage, service_address: str) -> str | None:
    """Why this message is automatic (e.g. "Auto-Submitted: auto-replied"), or None."""
    checks = (_by_header_values, _by_presence, _by_envelope, _by_sender, _by_loop)
    for check in checks:
        reason = check(msg, triage, service_address.strip().lower())
        if reason:
            return reason
    return None


def _by_header_values(msg: InboundMessage, triage: Triage, _service: str) -> str | None:
    for rule in triage.value_rules:
        for value in msg.headers.get(rule.header.lower(), ()):
            if rule.matches(value):
                return f"{rule.header}: {value}"
    return None


def _by_presence(msg: InboundMessage, triage: Triage, _service: str) -> str | None:
    for name in triage.presence_headers:
        value = msg.header(name)
        if value is not None:
            return f"{name}: {value}"
    return None


def _by_envelope(msg: InboundMessage, triage: Triage, _service: str) -> str | None:
    if msg.return_path == "":  # the null sender: bounces and receipts (RFC 5321 §4.5.5)
        return "Return-Path: <>"
    if msg.content_type.lower() in {t.lower() for t in triage.report_content_types}:
        return f"Content-Type: {msg.content_type}"
    return None


def _by_sender(msg: InboundMessage, triage: Triage, service: str) -> str | None:
    if service and msg.sender.lower() == service:
        return f"From: the service's own address {msg.sender}"
    local = msg.sender.rpartition("@")[0].lower() or msg.sender.lower()
    for pattern in triage.robot_senders:
        if fnmatchcase(local, pattern.lower()):
            return f"robot sender: {msg.sender}"
    return None


def _by_loop(msg: InboundMessage, triage: Triage, service: str) -> str | None:
    for name in triage.loop_headers:
        for value in msg.headers.get(name.lower(), ()):
            if service and service in value.lower():
                return f"{name}: {value}"
    return None


# --- the whole decision ----------------------------------------------------


def classify(msg: InboundMessage, triage: Triage, service_address: str,
             read_form: Callable[[bytes], FormReading]) -> Classification:
    """Automatic first (never answered); then the first PDF that is our application form."""
    reason = automatic_reason(msg, triage, service_address)
    if reason:
        return Classification("automatic", reason)
    if not msg.pdfs:
        return Classification("other", "no PDF attachment")
    return _read_pdfs(msg.pdfs, read_form)


def _read_pdfs(pdfs: tuple[Attachment, ...], read_form: Callable[[bytes], FormReading]) -> Classification:
    first_error: tuple[Attachment, PdfError] | None = None
    first_other: tuple[Attachment, FormReading] | None = None
    for pdf in pdfs:
        try:
            reading = read_form(pdf.data)
        except PdfError as exc:
            first_error = first_error or (pdf, exc)
            continue  # another PDF in the same mail may still be the form
        if reading.form == "application":
            return Classification("application", "application form", pdf, reading,
                                  first_error[1] if first_error else None)
        first_other = first_other or (pdf, reading)
    return _not_application(first_error, first_other)


def _not_application(first_error: tuple[Attachment, PdfError] | None,
                     first_other: tuple[Attachment, FormReading] | None) -> Classification:
    # An unreadable PDF is most likely the form itself, broken: say that first.
    if first_error:
        pdf, error = first_error
        reading = first_other[1] if first_other else None
        return Classification("other", f"PDF unreadable: {error.code}", pdf, reading, error)
    pdf, reading = first_other
    return Classification("other", "PDF is not the application form", pdf, reading)
