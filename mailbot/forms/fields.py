"""Normalisers: from the text an applicant typed to the values FormReading holds.

Applicants write 「企 業 名：」, full-width digits, ㈱, 令和 or 西暦 dates. Labels
are matched after NFKC and space removal; values are converted to the
vocabulary of the spec (ISO dates, ints, option codes). A value that cannot
be converted is returned unchanged (a string) so that a check can name it;
a blank value is None and ends up absent from ``FormReading.fields``.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from mailbot.forms.layout import EUROPE_LABEL, Field

# ○/◯/〇 before an option is how a printed form is circled when retyped.
TICKED_MARKS = "☑■✓✔☒✅○◯〇"
EMPTY_MARKS = "☐□"
_MARK_RE = re.compile(f"([{TICKED_MARKS}{EMPTY_MARKS}])")
_CJK_RE = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")

# 元号 → the Western year of its first year (令和元年 = 2019).
ERAS = {"令和": 2018, "R": 2018, "平成": 1988, "H": 1988, "昭和": 1925, "S": 1925}

# Japanese names of European countries → ISO 3166 alpha-2. Which of them the
# program accepts is decided in rules/, not here.
EUROPE_CODES = {
    "ドイツ": "DE", "フランス": "FR", "イタリア": "IT", "スペイン": "ES",
    "オランダ": "NL", "ベルギー": "BE", "ルクセンブルク": "LU", "オーストリア": "AT",
    "スイス": "CH", "ポーランド": "PL", "チェコ": "CZ", "スロバキア": "SK",
    "スロヴァキア": "SK", "ハンガリー": "HU", "ルーマニア": "RO", "ブルガリア": "BG",
    "ギリシャ": "GR", "ギリシア": "GR", "ポルトガル": "PT", "アイルランド": "IE",
    "英国": "GB", "イギリス": "GB", "連合王国": "GB", "デンマーク": "DK",
    "スウェーデン": "SE", "フィンランド": "FI", "ノルウェー": "NO", "アイスランド": "IS",
    "エストニア": "EE", "ラトビア": "LV", "ラトヴィア": "LV", "リトアニア": "LT",
    "スロベニア": "SI", "スロヴェニア": "SI", "クロアチア": "HR", "セルビア": "RS",
    "キプロス": "CY", "マルタ": "MT", "トルコ": "TR", "ウクライナ": "UA",
}


def nfkc(text: str) -> str:
    """NFKC, which also folds full-width digits and Kangxi radicals (⽇ → 日)."""
    return unicodedata.normalize("NFKC", text)


def label_key(text: str) -> str:
    """A label as compared: NFKC, no spaces anywhere, no trailing colon."""
    return re.sub(r"\s+", "", nfkc(text)).rstrip(":")


def match_text(text: str) -> str:
    """A value as compared (duplicate company names): ㈱ → 株式会社, no spaces.

    For matching only; the stored value keeps the applicant's spelling.
    """
    text = nfkc(text.replace("㈱", "株式会社").replace("㈲", "有限会社"))
    text = text.replace("(株)", "株式会社").replace("(有)", "有限会社")
    return re.sub(r"\s+", "", text)


def join_lines(text: str) -> str:
    """One value from a wrapped cell: lines joined, spaces tidied.

    A wrap between two Latin words was a space; a wrap next to Japanese was not.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    out = ""
    for ln in lines:
        latin_join = out and not _CJK_RE.match(out[-1]) and not _CJK_RE.match(ln[0])
        out += (" " if latin_join else "") + ln
    return re.sub(r"[ \t]{2,}", " ", out)


def _year(era: str | None, year: str) -> int:
    """A Western year from an optional 元号 and its year (元 = 1)."""
    n = 1 if year == "元" else int(year)
    return ERAS[era] + n if era else n


_ERA = r"(令和|平成|昭和|R|H|S)?\s*"
_YM = r"(\d{4}|\d{1,2}|元)\s*[年./\-]\s*(\d{1,2})"
_DATE_RE = re.compile(_ERA + _YM + r"\s*[月./\-]\s*(\d{1,2})\s*日?")
_MONTH_RE = re.compile(_ERA + _YM + r"\s*月?")


def _date_text(text: str) -> str:
    """NFKC, upper case, and a year in brackets dropped: 2024年（令和6年）6月3日."""
    return re.sub(r"\([^)]*\)(?=\s*[年./\-]?\s*\d)", "", nfkc(text).upper())


def _date_match_iso(m: re.Match) -> str | None:
    """The ISO date of a _DATE_RE match; None when it is not a valid date."""
    if not m.group(1) and len(m.group(2)) != 4:
        return None
    try:
        return dt.date(_year(m.group(1), m.group(2)), int(m.group(3)), int(m.group(4))).isoformat()
    except ValueError:
        return None


def parse_date(text: str) -> str | None:
    """和暦 or 西暦 → "YYYY-MM-DD"; None when it is not a valid date."""
    m = _DATE_RE.search(_date_text(text))
    return _date_match_iso(m) if m else None


def parse_month(text: str) -> str | None:
    """A year and month (a full date is accepted too) → "YYYY-MM"; else None."""
    m = _MONTH_RE.search(_date_text(text))
    if not m or (not m.group(1) and len(m.group(2)) != 4):
        return None
    month = int(m.group(3))
    return f"{_year(m.group(1), m.group(2)):04d}-{month:02d}" if 1 <= month <= 12 else None


_TIME_RE = re.compile(r"\s*(午前|午後|AM|PM)?\s*(\d{1,2})\s*(?:[:時]\s*(\d{2})?\s*分?)")


def _time_after(text: str, pos: int) -> str | None:
    """"HH:MM" of a time written right after a date (14:00, 14時30分, 午後2時)."""
    m = _TIME_RE.match(re.sub(r"^\s*[(（][^)）]*[)）]", "", text[pos:]))  # (水)
    if not m:
        return None
    hour = int(m.group(2)) + (12 if m.group(1) in ("午後", "PM") and int(m.group(2)) < 12 else 0)
    minute = int(m.group(3) or 0)
    return f"{hour:02d}:{minute:02d}" if hour < 24 and minute < 60 else None


def parse_datetimes(text: str) -> list[str]:
    """Every date in ``text`` → "YYYY-MM-DD", or "YYYY-MM-DDTHH:MM" with a start time.

    For 希望日時: 「第1希望 令和8年12月3日(木) 14:00〜15:00」 → "2026-12-03T14:00".
    """
    text, found = _date_text(text), []
    for m in _DATE_RE.finditer(text):
        day = _date_match_iso(m)
        if day:
            time = _time_after(text, m.end())
            found.append(f"{day}T{time}" if time else day)
    return found


def _strip_number(text: str, unit: str) -> str:
    """The digits of "1,200 名" / "１２時間" / "60％", units and commas removed."""
    text = re.sub(r"[\s,，]", "", nfkc(text))
    for u in (unit, "名", "人", "時間", "h", "%"):
        if u and text.endswith(u):
            text = text[: -len(u)]
    return text


def parse_int(text: str, unit: str = "") -> int | None:
    """A whole number with commas, units and full-width digits; None if not one."""
    digits = _strip_number(text, unit)
    return int(digits) if re.fullmatch(r"\d+", digits) else None


def parse_number(text: str, unit: str = "") -> int | float | None:
    """Like parse_int but a decimal is allowed (出資比率 33.3%)."""
    digits = _strip_number(text, unit)
    if not re.fullmatch(r"\d+(\.\d+)?", digits):
        return None
    value = float(digits)
    return int(value) if value.is_integer() else value


def read_boxes(text: str) -> list[tuple[bool, str]]:
    """(ticked, option text) for each checkbox in a cell: 「■既存 □設立予定」."""
    parts = _MARK_RE.split(nfkc(text))
    pairs = zip(parts[1::2], parts[2::2])
    return [(mark in TICKED_MARKS, label.strip(" \u3000\n")) for mark, label in pairs]


def europe_code(name: str) -> str | None:
    """A European country's Japanese name (or alpha-2 code) → its alpha-2 code."""
    name = re.sub(r"\s+", "", nfkc(name))
    if re.fullmatch(r"[A-Za-z]{2}", name):
        return name.upper()
    for ja in sorted(EUROPE_CODES, key=len, reverse=True):  # チェコ共和国 → チェコ
        if name.startswith(ja):
            return EUROPE_CODES[ja]
    return None


def country_code(option: str, code: str) -> str | None:
    """The code of a ticked country option; 欧州 takes its 国名 → "EU:DE"."""
    if code != "EU":
        return code
    inner = re.search(r"国名\s*[:：]?\s*(.*?)\)?$", nfkc(option).removeprefix(EUROPE_LABEL))
    sub = europe_code(inner.group(1)) if inner and inner.group(1) else None
    return f"EU:{sub}" if sub else None


def _option_for(f: Field, box_text: str) -> tuple[str, object] | None:
    """The option a checkbox's text names (longest label first: インドネシア ≠ インド)."""
    key = label_key(box_text)
    for label, value in sorted(f.options, key=lambda o: -len(o[0])):
        if key.startswith(label_key(label)):
            return label, value
    return None


def _ticked_values(f: Field, raw: str) -> list[object]:
    """The normalised values of every ticked option, in printed order."""
    values = []
    for ticked, text in read_boxes(raw):
        option = _option_for(f, text)
        if ticked and option:
            value = country_code(text, option[1]) if f.kind == "country" else option[1]
            values.append(value if value is not None else text)
    return values


def _options(f: Field, raw: str) -> object:
    """A choice/bool/country: the one ticked value; a multi: the list."""
    values = _ticked_values(f, raw)
    if not values:
        return None
    if f.kind == "multi":
        return values
    # Two boxes ticked, or 欧州 without a known country: keep the text for a check.
    return values[0] if len(values) == 1 else join_lines(raw)


_SCALAR = {"date": parse_date, "month": parse_month, "datetimes": lambda t: parse_datetimes(t) or None}


def _residue(text: str, f: Field) -> str:
    """What is left of a cell once placeholders (年 月 日, units) are removed."""
    text = re.sub(r"\s+", "", nfkc(text))
    if f.kind in _SCALAR:
        text = re.sub(r"[年月日]|令和|平成", "", text)
    if f.kind == "datetimes":  # the printed 「第1希望：　年　月　日　時」
        text = re.sub(r"第\d希望|[時分:〜~-]", "", text)
    return text.removesuffix(nfkc(f.unit)) if f.unit else text


def _text(f: Field, raw: str) -> str:
    """Free text as the applicant spelled it; codes compacted (NFKC, no spaces)."""
    if f.key in ("corporate_number", "contact_email"):
        return re.sub(r"[\s\-‐−ー]+" if f.key == "corporate_number" else r"\s+", "", nfkc(raw))
    if f.key == "contact_phone":
        return nfkc(join_lines(raw))
    return join_lines(raw)


def normalise(f: Field, raw: str) -> object:
    """The value of field ``f`` from its cell text; None when the cell is blank.

    A value that cannot be normalised is returned as the original text.
    """
    if f.options:
        return _options(f, raw)
    if not _residue(raw, f):
        return None
    if f.kind in _SCALAR:
        return _SCALAR[f.kind](raw) or join_lines(raw)
    if f.kind in ("int", "number"):
        parse = parse_int if f.kind == "int" else parse_number
        value = parse(raw, f.unit)
        return value if value is not None else join_lines(raw)
    return _text(f, raw)


def pledge_value(line: str) -> bool | None:
    """A pledge line's checkbox: True ticked, False empty, None when no box."""
    boxes = read_boxes(line)
    return boxes[0][0] if boxes else None
