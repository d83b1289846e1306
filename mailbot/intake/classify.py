"""Triage: every parsed message lands in exactly one of six classes.

In the order decided:

- ``junk``: spam and unsolicited advertising, never answered;
- ``automatic`` (kind: loop, bounce, list, out_of_office, robot): RFC 3834
  robots, never answered so that mailbot cannot start a mail loop;
- ``application`` / ``consultation``: a PDF that reads as one of our forms;
- ``documents``: files (Excel, PDF) sent in an existing application's thread;
- ``question``: everything else a person wrote, for staff.

The signs of junk and of each automatic kind, and the file kinds that count
as documents, live in ``rules/triage.toml`` where staff can read and extend
them. This module never touches the database: whether a message is in an
application's thread is looked up by the pipeline and passed in.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from mailbot import tomlfile
from mailbot.errors import PdfError, RulesError
from mailbot.forms.reading import FormReading
from mailbot.intake import archives
from mailbot.intake.message import Attachment, InboundMessage

#: The six classes, as stored in RawMessage.mail_class.
CLASSES = ("application", "consultation", "documents", "question", "automatic", "junk")
#: The kinds of automatic mail a rules file may name.
AUTOMATIC_KINDS = ("loop", "bounce", "list", "out_of_office", "robot")
#: The form a PDF reads as -> the class of the mail carrying it (first wins).
FORM_CLASSES = {"application": "application form", "consultation": "consultation-desk form"}


@dataclass(frozen=True)
class ValueRule:
    """A header whose value is a sign (``any_of``), or any value but ``unless``."""

    header: str
    any_of: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()

    def matches(self, value: str) -> bool:
        words = [w.lower() for w in re.split(r"[\s,;()]+", value) if w]
        if self.unless:  # RFC 3834 allows a comment after the keyword: judge the first word
            return not words or words[0] not in {u.lower() for u in self.unless}
        return bool(set(words) & {a.lower() for a in self.any_of})


@dataclass(frozen=True)
class Signs:
    """One rule table of triage.toml: any one sign that matches is enough."""

    presence_headers: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()
    subject_starts: tuple[str, ...] = ()
    subject_contains: tuple[str, ...] = ()
    loop_headers: tuple[str, ...] = ()
    value_rules: tuple[ValueRule, ...] = ()

    def reason(self, msg: InboundMessage, service: str) -> str | None:
        """The first sign found, as staff read it (e.g. "List-Id: <news.example.jp>"), or None."""
        checks = (_by_values, _by_presence, _by_content_type, _by_sender, _by_subject, _by_loop)
        for check in checks:
            found = check(self, msg, service)
            if found:
                return found
        return None


@dataclass(frozen=True)
class Triage:
    """rules/triage.toml: the signs of junk, of each automatic kind, and the document files."""

    junk: Signs = field(default_factory=Signs)
    automatic: tuple[tuple[str, Signs], ...] = ()  # (kind, signs), in the order checked
    document_extensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Classification:
    """What the message is, why, and what reading its PDFs gave.

    ``kind`` is the automatic kind ("" otherwise). ``wrong_files`` are the
    attachments a person sent instead of a PDF (they are told to send one).
    """

    mail_class: str  # one of CLASSES
    reason: str
    attachment: Attachment | None = None
    reading: FormReading | None = None
    pdf_error: PdfError | None = None
    kind: str = ""
    wrong_files: tuple[Attachment, ...] = ()


# --- loading the rules -----------------------------------------------------

_LISTS = ("presence_headers", "senders", "content_types", "subject_starts", "subject_contains",
          "loop_headers")


def load_triage(path: Path) -> Triage:
    """Read and validate triage.toml; RulesError names the file and the key."""
    data = tomlfile.read(path, RulesError)
    _no_unknown(path, "", data, {"junk", "automatic", "documents"})
    automatic = data.get("automatic", {})
    _table(path, "automatic", automatic)
    _no_unknown(path, "automatic.", automatic, set(AUTOMATIC_KINDS))
    kinds = tuple((kind, _signs(path, f"automatic.{kind}", table)) for kind, table in automatic.items())
    documents = data.get("documents", {})
    _table(path, "documents", documents)
    _no_unknown(path, "documents.", documents, {"extensions"})
    extensions = _strings(path, "documents.extensions", documents.get("extensions", []))
    return Triage(junk=_signs(path, "junk", data.get("junk", {})), automatic=kinds,
                  document_extensions=tuple(e.lower() for e in extensions))


def _signs(path: Path, where: str, table: Any) -> Signs:
    _table(path, where, table)
    _no_unknown(path, f"{where}.", table, set(_LISTS) | {"value_rules"})
    lists = {key: _strings(path, f"{where}.{key}", table.get(key, [])) for key in _LISTS}
    rules = table.get("value_rules", [])
    if not isinstance(rules, list):
        raise RulesError(f"{path}: {where}.value_rules: expected [[{where}.value_rules]] tables")
    values = tuple(_value_rule(path, f"{where}.value_rules[{i}]", r) for i, r in enumerate(rules))
    return Signs(value_rules=values, **lists)


def _table(path: Path, where: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise RulesError(f"{path}: {where}: expected a table [{where}]")


def _no_unknown(path: Path, prefix: str, table: dict, allowed: set[str]) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise RulesError(f"{path}: unknown key {prefix + min(unknown)!r}")


def _strings(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RulesError(f"{path}: {key}: expected a list of non-empty strings, got {value!r}")
    return tuple(v.strip() for v in value)


def _value_rule(path: Path, where: str, table: Any) -> ValueRule:
    _table(path, where, table)
    _no_unknown(path, f"{where}.", table, {"header", "any_of", "unless"})
    header = table.get("header")
    if not isinstance(header, str) or not header.strip():
        raise RulesError(f"{path}: {where}.header: expected a header name")
    if ("any_of" in table) == ("unless" in table):
        raise RulesError(f"{path}: {where} ({header}): give exactly one of any_of / unless")
    any_of = _strings(path, f"{where}.any_of", table.get("any_of", []))
    unless = _strings(path, f"{where}.unless", table.get("unless", []))
    return ValueRule(header=header.strip(), any_of=any_of, unless=unless)


# --- the signs ---------------------------------------------------------------


def _by_values(signs: Signs, msg: InboundMessage, _service: str) -> str | None:
    for rule in signs.value_rules:
        for value in msg.headers.get(rule.header.lower(), ()):
            if rule.matches(value):
                return f"{rule.header}: {value}"
    return None


def _by_presence(signs: Signs, msg: InboundMessage, _service: str) -> str | None:
    for name in signs.presence_headers:
        value = msg.header(name)
        if value is not None:
            return f"{name}: {value}"
    return None


def _by_content_type(signs: Signs, msg: InboundMessage, _service: str) -> str | None:
    if msg.content_type.lower() in {t.lower() for t in signs.content_types}:
        return f"Content-Type: {msg.content_type}"
    return None


def _by_sender(signs: Signs, msg: InboundMessage, _service: str) -> str | None:
    local = msg.sender.rpartition("@")[0].lower() or msg.sender.lower()
    for pattern in signs.senders:
        if fnmatchcase(local, pattern.lower()):
            return f"sender {msg.sender}"
    return None


def _by_subject(signs: Signs, msg: InboundMessage, _service: str) -> str | None:
    subject = comparable(msg.subject)
    starts = [m for m in signs.subject_starts if subject.startswith(comparable(m))]
    contains = [m for m in signs.subject_contains if comparable(m) in subject]
    found = (starts + contains)[:1]
    return f"Subject: {msg.subject}" if found else None


def _by_loop(signs: Signs, msg: InboundMessage, service: str) -> str | None:
    for name in signs.loop_headers:
        for value in msg.headers.get(name.lower(), ()):
            if service and service in value.lower():
                return f"{name}: {value}"
    return None


def comparable(text: str) -> str:
    """Text as rules compare it: NFKC (full-width letters and colons folded), no case, trimmed."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


# --- junk and automatic mail -----------------------------------------------


def junk_reason(msg: InboundMessage, triage: Triage, service_address: str) -> str | None:
    """Why this message is junk (e.g. "X-Spam-Flag: YES"), or None."""
    return triage.junk.reason(msg, service_address.strip().lower())


def automatic_kind(msg: InboundMessage, triage: Triage, service_address: str) -> tuple[str, str] | None:
    """(kind, why) when this message is automatic, e.g. ("list", "List-Id: <x>"); else None."""
    service = service_address.strip().lower()
    if service and msg.sender.lower() == service:
        return "loop", f"From: the service's own address {msg.sender}"
    for kind, signs in triage.automatic:
        found = signs.reason(msg, service)
        if found:
            return kind, found
    if msg.return_path == "":  # the null sender of bounces (RFC 5321 §4.5.5); robots above named theirs
        return "bounce", "Return-Path: <>"
    return None


def automatic_reason(msg: InboundMessage, triage: Triage, service_address: str) -> str | None:
    """The reason as stored for staff, "kind: why" (e.g. "out_of_office: Auto-Submitted: auto-replied")."""
    found = automatic_kind(msg, triage, service_address)
    return f"{found[0]}: {found[1]}" if found else None


# --- the whole decision ----------------------------------------------------


def classify(msg: InboundMessage, triage: Triage, service_address: str,
             read_form: Callable[[bytes], FormReading], thread: str | None = None) -> Classification:
    """The one class of this message.

    ``thread`` is the reception number of the application whose thread the
    message is in (the pipeline looks it up), or None.
    """
    junk = junk_reason(msg, triage, service_address)
    if junk:
        return Classification("junk", junk)
    automatic = automatic_kind(msg, triage, service_address)
    if automatic:
        return Classification("automatic", f"{automatic[0]}: {automatic[1]}", kind=automatic[0])
    return _from_a_person(msg, triage, read_form, thread)


@dataclass
class _PdfResults:
    """What reading every PDF of one mail gave."""

    form: tuple[Attachment, FormReading] | None = None
    errors: list[tuple[Attachment, PdfError]] = field(default_factory=list)
    others: list[tuple[Attachment, FormReading]] = field(default_factory=list)


def _from_a_person(msg: InboundMessage, triage: Triage, read_form: Callable[[bytes], FormReading],
                   thread: str | None) -> Classification:
    files = tuple(a for a in msg.attachments if not a.inline)  # logos in signatures are not files
    pdfs = tuple(a for a in files if a.is_pdf)
    results = _read_pdfs(pdfs, read_form)
    first_error = results.errors[0] if results.errors else (None, None)
    if results.form:
        pdf, reading = results.form
        return Classification(reading.form, FORM_CLASSES[reading.form], pdf, reading, first_error[1])
    documents = _documents(files, results, triage)
    if thread and documents:
        names = "、".join(a.filename or "(名前なし)" for a in documents)
        return Classification("documents", f"documents in the thread of {thread}: {names}",
                              documents[0], pdf_error=first_error[1])
    results.errors += _zips_left_closed(files)
    return _question(files, pdfs, results, thread)


def _read_pdfs(pdfs: tuple[Attachment, ...], read_form: Callable[[bytes], FormReading]) -> _PdfResults:
    """Read each PDF until one is a form; the application form wins over the consultation form."""
    results = _PdfResults()
    for pdf in pdfs:
        try:
            reading = read_form(pdf.data)
        except PdfError as exc:
            results.errors.append((pdf, exc))
            continue  # another PDF in the same mail may still be the form
        if reading.form == "application":
            results.form = (pdf, reading)
            return results
        if reading.form in FORM_CLASSES and results.form is None:
            results.form = (pdf, reading)
        elif reading.form not in FORM_CLASSES:
            results.others.append((pdf, reading))
    return results


def _zips_left_closed(files: tuple[Attachment, ...]) -> list[tuple[Attachment, PdfError]]:
    """Zips whose PDFs stayed inside (a bomb, a password, a broken archive), each with the reason.

    After the PDFs' own errors: a readable PDF or a PDF's error speaks first,
    and a zip that was left closed is not answered as "not a PDF".
    """
    found = ((a, archives.refusal(a)) for a in files if archives.is_zip(a))
    return [(a, error) for a, error in found if error is not None]


def _documents(files: tuple[Attachment, ...], results: _PdfResults, triage: Triage) -> tuple[Attachment, ...]:
    """The files that count as step-03 documents: by name, and PDFs only when they read."""
    readable = [pdf for pdf, _ in results.others]
    endings = triage.document_extensions
    return tuple(a for a in files if a.filename.lower().endswith(endings)
                 and (not a.is_pdf or any(a is r for r in readable)))


def _question(files: tuple[Attachment, ...], pdfs: tuple[Attachment, ...], results: _PdfResults,
              thread: str | None) -> Classification:
    # An unreadable PDF is most likely the form itself, broken: say that first.
    reading = results.others[0][1] if results.others else None
    if results.errors:
        pdf, error = results.errors[0]
        return Classification("question", f"PDF unreadable: {error.code}", pdf, reading, error)
    if files and not pdfs:
        names = "、".join(a.filename or "(名前なし)" for a in files)
        return Classification("question", f"no PDF attachment: {names}", wrong_files=files)
    if results.others:
        return Classification("question", "PDF is not the application form", results.others[0][0], reading)
    where = f"a reply in the thread of {thread}" if thread else "a mail from a person"
    return Classification("question", f"{where}, no attachment")
