"""Raw message bytes → :class:`InboundMessage`, Japanese decoded right.

mail-parser reads the MIME structure; the text itself is decoded here from
its standard-library message object, because mail-parser ignores the charset
of 7bit/8bit parts and garbles CP932 extensions (see
../shared/notes/japanese-mail.md). All charset work goes through
:mod:`mailbot.intake.japanese`.
"""

from __future__ import annotations

import base64
import binascii
import email
import logging
import quopri
import re
import secrets
from datetime import datetime
from email.errors import MessageError, StartBoundaryNotFoundDefect
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import ClassVar

import mailparser
from mailparser.exceptions import MailParserError

from mailbot.errors import ParseError
from mailbot.intake import archives
from mailbot.intake.japanese import (
    decode_bytes,
    decode_header,
    decode_raw,
    meta_charset,
    rfc2231_bytes,
)
from mailbot.intake.message import Attachment, InboundMessage

log = logging.getLogger(__name__)

_MSG_ID = re.compile(r"<[^<>\s]+>")
#: Control characters (C0, DEL, C1) and the Unicode line and paragraph separators:
#: header text is one line, whatever an encoded word or a bare CR put in it.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str) -> str:
    """Header text as one line: each run of control characters (CR, LF, NUL, ESC…) becomes a space."""
    return _CONTROLS.sub(" ", text).strip()


def parse(raw: bytes) -> InboundMessage:
    """Parse one message; ParseError when the bytes are not a mail at all."""
    msg = _load(raw)
    sender_name, sender = _first_address(msg, "from")
    if not sender:
        raise ParseError("no sender address in From:")
    return InboundMessage(
        message_id=_first_id(msg.get("message-id")),
        sender=sender,
        sender_name=sender_name,
        to=_addresses(msg, "to"),
        cc=_addresses(msg, "cc"),
        subject=one_line(decode_header(str(msg.get("subject", "")))),
        text=body_text(msg),
        attachments=tuple(attachments(msg)),
        in_reply_to=_first_id(msg.get("in-reply-to")),
        references=tuple(_MSG_ID.findall(_CONTROLS.sub(" ", str(msg.get("references", ""))))),
        reply_to=_addresses(msg, "reply-to"),
        return_path=_return_path(msg.get("return-path")),
        date=_date(msg.get("date")),
        content_type=msg.get_content_type(),
        headers=_headers(msg),
    )


def _load(raw: bytes) -> Message:
    if not raw or not raw.strip():
        raise ParseError("empty message")
    small, cuts = cut_big_runs(raw)
    try:
        msg = mailparser.parse_from_bytes(small).message
    except (MailParserError, MessageError, ValueError) as exc:
        # mail-parser decodes headers eagerly and trips over broken encoded-words
        # that we decode leniently; its message object is the stdlib's, so build that.
        log.warning("mail-parser failed (%s); using the standard parser", exc)
        msg = _standard_parse(small)
    if not msg.keys():
        raise ParseError("no header fields: not an e-mail message")
    _refuse_deep_nesting(msg)
    _put_back(msg, cuts)
    _refuse_lost_parts(msg)
    return msg


#: Parts inside parts, at most: real mail nests a few levels (a forward of a forward);
#: every walk over the parts here is recursive, and Python's recursion has a limit.
MAX_NESTING = 200
TOO_DEEP = f"MIME parts nested deeper than {MAX_NESTING} levels: not read"


def _standard_parse(raw: bytes) -> Message:
    try:
        return email.message_from_bytes(raw)
    except RecursionError:  # the parser's own recursion, on parts nested ~1,000 deep
        raise ParseError(TOO_DEEP) from None


def _refuse_deep_nesting(msg: Message) -> None:
    """ParseError when parts nest deeper than MAX_NESTING (counted without recursion)."""
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_NESTING:
            raise ParseError(TOO_DEEP)
        payload = part.get_payload()
        if isinstance(payload, list):
            stack += [(inner, depth + 1) for inner in payload if isinstance(inner, Message)]


def _refuse_lost_parts(msg: Message) -> None:
    """A multipart whose boundary never occurs: its text and files are there, but cannot be told apart.

    Judged as it parses, it would be a mail with no text and no attachment, a
    question nobody can answer; quarantined, staff read the raw mail instead.
    """
    for part in msg.walk():
        if any(isinstance(d, StartBoundaryNotFoundDefect) for d in part.defects):
            boundary = part.get_param("boundary") or ""
            raise ParseError(f"{part.get_content_type()}: its boundary {boundary!r} never occurs, "
                             "so its parts (text, attachments) cannot be told apart")


# --- big attachments: decoded from the raw bytes, not line by line ----------

#: A run of base64 lines this long (an attachment of ~1 MB or more) is cut out before
#: parsing and decoded straight from the raw bytes. The standard parser keeps every
#: line as an object of its own: a mail with a 50 MB attachment cost 590 MB at its
#: peak; decoding the run costs its decoded size.
BIG_RUN_BYTES = 1024 * 1024
#: A line starting like base64 and everything after it that base64 lines can hold. One
#: character class, not a group per line: the regex engine keeps no stack per repeat.
_BASE64_RUN = re.compile(rb"(?<=\n)[A-Za-z0-9+/][A-Za-z0-9+/=\r\n \t]*")
_CUT = re.compile(r"(mailbot-cut-\d+-[0-9a-f]{32})")


def cut_big_runs(raw: bytes) -> tuple[bytes, dict[str, memoryview]]:
    """``raw`` with each base64 run over BIG_RUN_BYTES replaced by a marker line; the runs by marker.

    The markers carry a random token, so no text a sender wrote can pose as one.
    """
    view, pieces, cuts, last = memoryview(raw), [], {}, 0
    token = secrets.token_hex(16)
    for run in _BASE64_RUN.finditer(raw):
        end = raw.rfind(b"\n", run.start(), run.end()) + 1  # whole lines only
        if end - run.start() >= BIG_RUN_BYTES:
            marker = f"mailbot-cut-{len(cuts)}-{token}"
            pieces += [view[last:run.start()], marker.encode("ascii") + b"\r\n"]
            cuts[marker], last = view[run.start():end], end
    if not cuts:
        return raw, {}
    return b"".join([*pieces, view[last:]]), cuts


def _put_back(msg: Message, cuts: dict[str, memoryview]) -> None:
    """Each cut run back in its part: decoded at once in a base64 part, as the text it was elsewhere."""
    if not cuts:
        return
    for part in msg.walk():
        payload = part.get_payload()
        if not isinstance(payload, str) or not _CUT.search(payload):
            continue
        texts = _CUT.split(payload)
        decoded = _decoded_run(part, texts, cuts)
        if decoded is None:
            part.set_payload("".join(cuts[t].tobytes().decode("ascii") if t in cuts else t for t in texts))
        else:
            # Kept beside the part: set_payload(bytes) would hold them as a str of twice the size.
            setattr(part, _DECODED, decoded)
            part.set_payload("")


#: The attribute holding a part's body that _put_back decoded from the raw bytes.
_DECODED = "mailbot_decoded"


def _decoded_run(part: Message, texts: list[str], cuts: dict[str, memoryview]) -> bytes | None:
    """The body of a base64 part that is one cut run (and white space), decoded in place; else None."""
    runs = [t for t in texts if t in cuts]
    if str(part.get("content-transfer-encoding", "")).strip().lower() != "base64" or len(runs) != 1:
        return None
    if any(t.strip() for t in texts if t not in cuts):
        return None
    try:
        return binascii.a2b_base64(cuts[runs[0]])
    except binascii.Error:
        return None  # broken padding: the standard decoder's leniency decides, as for any part


def payload_bytes(part: Message) -> bytes:
    """A leaf part's decoded body: the one _put_back decoded, else the standard decoder's."""
    decoded = getattr(part, _DECODED, None)
    return decoded if decoded is not None else (part.get_payload(decode=True) or b"")


# --- addresses and headers -------------------------------------------------


def _first_address(msg: Message, name: str) -> tuple[str, str]:
    pairs = _pairs(msg, name)
    return pairs[0] if pairs else ("", "")


def _addresses(msg: Message, name: str) -> tuple[str, ...]:
    return tuple(address for _, address in _pairs(msg, name))


def _pairs(msg: Message, name: str) -> list[tuple[str, str]]:
    """(decoded display name, bare address) for every address in every such header."""
    values = [str(value) for value in msg.get_all(name, [])]
    # Split on the raw text so that commas inside encoded display names stay put.
    return [(one_line(decode_header(display)), one_line(decode_raw(addr)))
            for display, addr in getaddresses(values) if addr]


def _first_id(value: object) -> str | None:
    if value is None:
        return None
    text = _CONTROLS.sub("", str(value)).strip()  # a msg-id has no spaces: controls go, not become one
    found = _MSG_ID.search(text)
    return found.group(0) if found else (text or None)


def _return_path(value: object) -> str | None:
    if value is None:
        return None
    return str(value).strip().strip("<>").strip()  # "<>" → "" (the null sender)


def _date(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None  # a broken Date: is only for display; never fail the mail for it


def _headers(msg: Message) -> dict[str, tuple[str, ...]]:
    headers: dict[str, list[str]] = {}
    for name, value in msg.items():
        headers.setdefault(name.lower(), []).append(one_line(decode_header(str(value))))
    return {name: tuple(values) for name, values in headers.items()}


# --- body text -------------------------------------------------------------


def body_text(msg: Message) -> str:
    """The readable text: plain parts preferred, HTML rendered when there is no plain.

    Forwarded messages (message/rfc822) are not searched unless the outer
    message has no text of its own.
    """
    plain, html = _text_parts(msg, nested=False)
    if not plain and not html:
        plain, html = _text_parts(msg, nested=True)
    if plain:
        return "\n".join(plain)
    return "\n".join(html_to_text(part) for part in html)


def _text_parts(msg: Message, nested: bool) -> tuple[list[str], list[str]]:
    plain: list[str] = []
    html: list[str] = []
    for part in _leaves(msg, nested):
        kind = part.get_content_type()
        if _is_attachment(part) or kind not in ("text/plain", "text/html"):
            continue
        (plain if kind == "text/plain" else html).append(part_text(part))
    return [t for t in plain if t.strip()], [t for t in html if t.strip()]


def part_text(part: Message) -> str:
    """A text part's payload decoded with its declared (or guessed) charset, LF line ends."""
    data = payload_bytes(part)
    charset = part.get_param("charset")
    label = charset if isinstance(charset, str) else None
    if label is None and part.get_content_type() == "text/html":
        label = meta_charset(data)  # HTML saved from a browser or Word names it only in <meta>
    return decode_bytes(data, label).replace("\r\n", "\n").replace("\r", "\n")


def _leaves(msg: Message, nested: bool):
    """Non-multipart parts in order; into message/rfc822 only when ``nested``."""
    if msg.get_content_maintype() == "message":
        if not nested:
            return
        for inner in _inner_messages(msg):
            yield from _leaves(inner, nested)
    elif msg.is_multipart():
        for part in msg.get_payload():
            yield from _leaves(part, nested)
    else:
        yield msg


def _inner_messages(part: Message) -> list[Message]:
    """The messages inside a message/* part, undoing a transfer encoding if one was used.

    RFC 2046 forbids base64/quoted-printable on message/rfc822, but some
    mailers do it; the parser then sees one header-less message of encoded text.
    """
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding in ("base64", "quoted-printable") and len(payload) == 1 and not payload[0].keys():
        return [_decoded_message(payload[0], encoding)]
    return payload


def _decoded_message(encoded: Message, encoding: str) -> Message:
    text = str(encoded.get_payload()).encode("ascii", "ignore")  # base64/QP text is ASCII
    try:
        data = base64.b64decode(text) if encoding == "base64" else quopri.decodestring(text)
    except binascii.Error:
        return encoded  # not decodable after all: keep what the parser saw
    return email.message_from_bytes(data)


#: A line break in the HTML source between two Japanese characters: the
#: writer's editor wrapped the line; a browser shows no space there for Japanese.
_CJK = "\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff01-\uffef"
_CJK_WRAP = re.compile(rf"(?<=[{_CJK}])[ \t]*\n[ \t\r\n\f]*(?=[{_CJK}])")
#: HTML's own white space: the ideographic space 　 is text, and kept.
_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")


class _HtmlText(HTMLParser):
    """Collects the visible text of an HTML body, one line per block element."""

    _BLOCKS: ClassVar[set[str]] = {
        "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote",
        "pre", "hr", "dl", "section", "article", "header", "footer", "address", "center"}
    # These start a line; rows and items follow each other without a blank line.
    _LINES: ClassVar[set[str]] = {"br", "tr", "li", "dt", "dd"}
    _CELLS: ClassVar[set[str]] = {"td", "th"}
    # <xml>: the Office data Word puts in Outlook's HTML.
    _HIDDEN: ClassVar[set[str]] = {"script", "style", "head", "title", "xml"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._BLOCKS or tag in self._LINES:
            self.chunks.append("\n")
        elif tag in self._CELLS:
            self.chunks.append(" ")  # cells of one row stay on one line, apart

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag not in self._HIDDEN:  # <br/>, <hr/>: one break, not an opening and a closing one
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            text = _HTML_SPACE.sub(" ", _CJK_WRAP.sub("", data))
            self.chunks.append(text.replace("\xa0", " "))  # &nbsp;


def html_to_text(html: str) -> str:
    """Visible text of an HTML document: no tags, entities decoded, blank lines collapsed."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.chunks).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- attachments -----------------------------------------------------------


def attachments(msg: Message) -> list[Attachment]:
    """Every attached file, including those inside forwarded messages.

    A message/rfc822 part is a container, not a file: its contents are
    searched instead (mail-parser would add a bogus .txt for it). So is a
    zip, within the limits of archives.py.
    """
    found = []
    for part in _leaves(msg, nested=True):
        if _is_attachment(part):
            data = payload_bytes(part)
            found.append(Attachment(filename=filename(part), content_type=part.get_content_type(),
                                    data=data, inline=_is_inline_image(part)))
    # PDFs inside a zip become attachments of their own (the zip stays too).
    return found + [pdf for a in found if archives.is_zip(a) for pdf in archives.pdfs_in_zip(a)]


def _is_attachment(part: Message) -> bool:
    if part.get_content_maintype() in ("multipart", "message"):
        return False
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment" or part.get_param("filename", header="content-disposition"):
        return True
    if part.get_param("name"):
        return True
    return part.get_content_maintype() != "text"


def _is_inline_image(part: Message) -> bool:
    """An image the HTML body shows by its Content-ID (a signature logo), not a file sent to us."""
    disposition = (part.get_content_disposition() or "inline").lower()
    return part.get_content_maintype() == "image" and disposition == "inline" and bool(part.get("content-id"))


def filename(part: Message) -> str:
    """The file name from Content-Disposition, else Content-Type name; "" when none."""
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        value = part.get_param(param, header=header)
        if value:
            return one_line(_param_text(value))
    return ""


def _param_text(value: str | tuple) -> str:
    if isinstance(value, tuple):  # RFC 2231: (charset, language, percent-decoded latin-1 text)
        charset, _language, text = value
        return decode_bytes(rfc2231_bytes(text.strip('"')), charset or None)
    # Outlook puts RFC 2047 encoded-words inside quoted parameters; strip quotes first.
    return decode_header(value.strip('"'))
