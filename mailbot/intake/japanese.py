"""Japanese text in mail, decoded as Japanese mailers really send it.

All of mailbot's Japanese fixes live here (tests: tests/intake/test_japanese.py).

Outlook and other Windows mailers label mail ``ISO-2022-JP`` but send
Microsoft's CP50220/CP50221: JIS X 0208 plus the CP932 extensions (NEC row
13 such as ①㈱, NEC-selected IBM kanji such as 髙) and half-width kana
(``ESC ( I`` or SO/SI). No Python codec decodes that, so this module decodes
it by transcoding each JIS pair to Shift_JIS and decoding as cp932, which
knows every one of those characters. Likewise "Shift_JIS" labels mean cp932.

Importing the module registers the codec under ``cp50220``, ``cp50221``,
``cp50222`` and ``mailbot_iso2022jp``. The standard library's own
``iso-2022-jp`` entry always wins in ``codecs.lookup``, so callers resolve
labels with :func:`codec_name` (or simply call :func:`decode`).

Headers: Python's decoders garble encoded-words split in the middle of an
ISO-2022-JP character, CP932 extensions inside ``=?ISO-2022-JP?…?=``, and
raw Shift_JIS/UTF-8 bytes in headers. :func:`decode_header` joins adjacent
encoded-words of one charset as bytes before decoding them with this codec.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re

CODEC = "mailbot_iso2022jp"

ESC = 0x1B
SO, SI = 0x0E, 0x0F

# Escape sequences → the character set that follows them.
_ESCAPES = {
    b"\x1b(B": "ascii",
    b"\x1b(J": "ascii",  # JIS X 0201 Roman: ASCII but for ¥ and ‾; mailers mean ASCII
    b"\x1b(I": "kana",
    b"\x1b$@": "jis",
    b"\x1b$B": "jis",
    b"\x1b&@\x1b$B": "jis",  # JIS X 0208-1990 announcer
    b"\x1b$(Q": "jis",  # JIS X 0213 plane 1: its JIS X 0208 part is all mailers use
    b"\x1b$(O": "jis",
}

_LABEL = re.compile(r"[a-z0-9][a-z0-9._:+-]*\Z")

# Every label that means "ISO-2022-JP as Windows writes it".
_JIS_LABELS = {
    "iso-2022-jp", "iso2022jp", "iso2022-jp", "csiso2022jp", "iso-2022-jp-1",
    "iso-2022-jp-ms", "iso-2022-jp-2", "iso-2022-jp-3", "iso-2022-jp-2004",
    "iso-2022-jp-ext", "cp50220", "cp50221", "cp50222", "jis", "x-jis", CODEC,
}
# Labels that mean Shift_JIS; in practice the bytes are cp932 (Windows-31J).
_SJIS_LABELS = {
    "shift_jis", "shift-jis", "sjis", "x-sjis", "s-jis", "ms_kanji", "csshiftjis",
    "windows-31j", "cswindows31j", "ms932", "cp932", "x-ms-cp932", "shift_jis-2004",
}


def codec_name(label: str) -> str:
    """The Python codec to use for a MIME charset label (unknown labels pass through)."""
    key = label.strip().strip('"').lower()
    if key in _JIS_LABELS or key.replace("_", "-") in _JIS_LABELS:
        return CODEC
    if key in _SJIS_LABELS or key.replace("_", "-") in _SJIS_LABELS:
        return "cp932"
    return key


def decode(data: bytes, label: str, errors: str = "strict") -> str:
    """Decode bytes labelled ``label``; raises LookupError for an unknown label."""
    name = codec_name(label)
    if not _LABEL.match(name):  # junk such as NUL in a label would raise ValueError deep inside
        raise LookupError(f"not a charset name: {label!r}")
    return codecs.decode(data, name, errors)


def jis_to_sjis(j1: int, j2: int) -> tuple[int, int]:
    """One JIS X 0208 row/cell pair (0x21–0x7E each) → its Shift_JIS bytes."""
    s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
    if j1 % 2:  # odd rows use the lower half of the trail-byte range
        s2 = j2 + 0x1F + (1 if j2 >= 0x60 else 0)
    else:
        s2 = j2 + 0x7E
    return s1, s2


def sjis_to_jis(s1: int, s2: int) -> tuple[int, int]:
    """The inverse of :func:`jis_to_sjis` for lead bytes 0x81–0x9F and 0xE0–0xEF (and user area)."""
    row = s1 - (0x70 if s1 <= 0x9F else 0xB0)
    j1 = row * 2 - 1
    if s2 >= 0x9F:
        return j1 + 1, s2 - 0x7E
    return j1, s2 - 0x1F - (1 if s2 >= 0x80 else 0)


def decode_jis(data: bytes, errors: str = "strict") -> tuple[str, int]:
    """Decode Windows-style ISO-2022-JP; returns (text, bytes consumed)."""
    data = bytes(data)  # codecs may hand over a memoryview
    out: list[str] = []
    mode, pos = "ascii", 0
    while pos < len(data):
        byte = data[pos]
        if byte == ESC:
            mode, pos = _escape(data, pos, mode, out, errors)
        elif byte in (SO, SI):  # CP50222-style shift to/from half-width kana
            mode, pos = ("kana" if byte == SO else "ascii"), pos + 1
        elif byte in (0x0A, 0x0D) and mode == "jis":
            out.append(chr(byte))  # a bare line end in JIS mode: be lenient, keep going
            pos += 1
        else:
            pos = _char(data, pos, mode, out, errors)
    return "".join(out), len(data)


def _escape(data: bytes, pos: int, mode: str, out: list[str], errors: str) -> tuple[str, int]:
    for seq, new_mode in _ESCAPES.items():
        if data.startswith(seq, pos):
            return new_mode, pos + len(seq)
    return mode, _bad(data, pos, pos + 1, "unknown escape sequence", out, errors)


def _char(data: bytes, pos: int, mode: str, out: list[str], errors: str) -> int:
    byte = data[pos]
    if mode == "kana" and 0x21 <= byte <= 0x5F:
        out.append(chr(0xFF61 + byte - 0x21))  # 0x21 is ｡ U+FF61
        return pos + 1
    if mode != "jis":
        if byte < 0x80:
            out.append(chr(byte))
            return pos + 1
        return _bad(data, pos, pos + 1, "8-bit byte in ISO-2022-JP", out, errors)
    return _pair(data, pos, out, errors)


def _pair(data: bytes, pos: int, out: list[str], errors: str) -> int:
    if pos + 1 >= len(data):
        return _bad(data, pos, pos + 1, "truncated double-byte character", out, errors)
    j1, j2 = data[pos], data[pos + 1]
    if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
        return _bad(data, pos, pos + 2, "invalid JIS X 0208 pair", out, errors)
    try:
        out.append(bytes(jis_to_sjis(j1, j2)).decode("cp932"))
    except UnicodeDecodeError:
        return _bad(data, pos, pos + 2, "JIS pair not in cp932", out, errors)
    return pos + 2


def _bad(data: bytes, start: int, end: int, reason: str, out: list[str], errors: str) -> int:
    """Apply the caller's error handler (strict, replace, ignore, …) to data[start:end]."""
    exc = UnicodeDecodeError(CODEC, data, start, end, reason)
    replacement, resume = codecs.lookup_error(errors)(exc)
    out.append(replacement)
    return resume


def encode_jis(text: str, errors: str = "strict") -> tuple[bytes, int]:
    """Encode as CP50221 (JIS X 0208 + CP932 extensions, ESC ( I kana); ends in ASCII."""
    out, mode = bytearray(), "ascii"
    for index, char in enumerate(text):
        raw, new_mode = _encode_char(text, index, char, errors)
        if new_mode != mode:
            out += {"ascii": b"\x1b(B", "kana": b"\x1b(I", "jis": b"\x1b$B"}[new_mode]
            mode = new_mode
        out += raw
    if mode != "ascii":
        out += b"\x1b(B"
    return bytes(out), len(text)


def _encode_char(text: str, index: int, char: str, errors: str) -> tuple[bytes, str]:
    if ord(char) < 0x80:
        return char.encode("ascii"), "ascii"
    sjis = char.encode("cp932", errors)
    if len(sjis) == 1 and 0xA1 <= sjis[0] <= 0xDF:
        return bytes([sjis[0] - 0x80]), "kana"
    if len(sjis) == 2 and sjis[0] < 0xFA:
        return bytes(sjis_to_jis(sjis[0], sjis[1])), "jis"
    # IBM extension codes (0xFA–0xFC) have no JIS form; let the handler decide.
    exc = UnicodeEncodeError(CODEC, text, index, index + 1, "no JIS code for this character")
    replacement, _ = codecs.lookup_error(errors)(exc)
    return (replacement.encode("ascii") if isinstance(replacement, str) else replacement), "ascii"


def _search(name: str) -> codecs.CodecInfo | None:
    if name.replace("-", "_") not in {CODEC, "cp50220", "cp50221", "cp50222"}:
        return None
    return codecs.CodecInfo(name=CODEC, encode=encode_jis, decode=decode_jis)


# =?charset(*language)?B|Q?text?=   (the language suffix is from RFC 2231 §5)
_ENCODED_WORD = re.compile(r"=\?([^?*\s]+)(?:\*[^?\s]*)?\?([BbQq])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def decode_header(value: str) -> str:
    """A header value as text: unfolded, encoded-words and raw 8-bit bytes decoded."""
    out: list[str] = []
    pending: tuple[str, bytearray] | None = None  # (charset, bytes) of joined words
    pos = 0
    value = _FOLD.sub("", value)
    for match in _ENCODED_WORD.finditer(value):
        between, pos = value[pos:match.start()], match.end()
        charset, data = match.group(1).lower(), _word_bytes(match.group(2), match.group(3))
        if pending and pending[0] == charset and not between.strip():
            pending[1].extend(data)  # one byte stream: a character may span two words
            continue
        _flush(out, pending)
        if not (pending and not between.strip()):  # RFC 2047 §6.2: drop space between words
            out.append(decode_raw(between))
        pending = (charset, bytearray(data))
    _flush(out, pending)
    return "".join(out) + decode_raw(value[pos:])


def _flush(out: list[str], pending: tuple[str, bytearray] | None) -> None:
    if pending:
        out.append(decode_bytes(bytes(pending[1]), pending[0]))


def _word_bytes(encoding: str, text: str) -> bytes:
    ascii_text = text.encode("ascii", "ignore")  # stray 8-bit bytes cannot be base64/QP anyway
    if encoding in "Bb":
        try:
            return base64.b64decode(ascii_text + b"=" * (-len(ascii_text) % 4))
        except binascii.Error:
            return ascii_text  # broken base64: show the word rather than lose the header
    return quopri.decodestring(ascii_text.replace(b"_", b" "), header=True)


def decode_raw(value: str) -> str:
    """Header text that may hold raw 8-bit bytes (kept as surrogates by the email parser)."""
    raw = value.encode("ascii", "surrogateescape") if _has_surrogates(value) else None
    if raw is not None:
        return sniff_decode(raw)
    if "\x1b" in value:  # unencoded ISO-2022-JP straight in the header (old mailers)
        return decode(value.encode("ascii", "replace"), CODEC, "replace")
    return value


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes labelled ``charset`` (or unlabelled) → text; never raises on bad bytes."""
    if charset:
        try:
            return decode(data, charset)
        except UnicodeDecodeError:
            pass  # mislabelled: guess below
        except LookupError:
            pass  # unknown label: guess below
    return sniff_decode(data)


def sniff_decode(data: bytes) -> str:
    """Guess the charset of unlabelled Japanese text: JIS escapes, UTF-8, then cp932 or EUC-JP."""
    if b"\x1b$" in data or b"\x1b(" in data:
        return decode(data, CODEC, "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass  # not UTF-8: one of the two Japanese 8-bit codes
    candidates = []
    for codec in ("cp932", "euc_jp"):
        try:
            candidates.append(data.decode(codec))
        except UnicodeDecodeError:
            continue
    if not candidates:
        return data.decode("utf-8", "replace")
    return min(candidates, key=_oddness)  # the first (cp932) wins a tie


def _oddness(text: str) -> int:
    """How many characters look wrong for Japanese prose.

    EUC-JP bytes often decode as cp932 too, but as runs of half-width kana
    and user-defined characters; real Japanese text has few of either.
    """
    return sum(1 for char in text if "\uff61" <= char <= "\uff9f" or "\ue000" <= char <= "\uf8ff")


_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.IGNORECASE)


def meta_charset(html: bytes) -> str | None:
    """The charset an HTML document names in its ``<meta>`` (looked for in its head), or None."""
    found = _META_CHARSET.search(html[:4096])
    return found.group(1).decode("ascii") if found else None


def rfc2231_bytes(text: str) -> bytes:
    """The bytes behind an RFC 2231 value as ``email`` hands it over (latin-1 per byte)."""
    return text.encode("latin-1", "replace")


codecs.register(_search)
