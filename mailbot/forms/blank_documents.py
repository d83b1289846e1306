"""Write the two step-03 documents the project ships (simple versions).

    python -m mailbot.forms.blank_documents [OUTPUT_DIR]

writes ``held-info-list.xlsx`` (保有情報リスト) and ``self-check-sheet.xlsx``
(情報管理体制セルフチェックシート) into mailbot/forms/blank/ by default. The
program's real files are configured paths ([workflow] held_info_list,
self_check_sheet); these are what an installation without them attaches to
the adoption mail. Regenerating gives the same bytes: the workbook
properties and every zip entry's timestamp are fixed.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
import zipfile
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.worksheet.datavalidation import DataValidation

BLANK_DIR = Path(__file__).parent / "blank"
HELD_INFO_FILE, SELF_CHECK_FILE = "held-info-list.xlsx", "self-check-sheet.xlsx"
PROGRAM = "海外における営業秘密漏えい対策支援事業"
HELD_INFO_TITLE, SELF_CHECK_TITLE = "保有情報リスト", "情報管理体制セルフチェックシート"
HELD_INFO_HEADERS = ("No.", "情報の名称", "分類（技術情報／営業情報）", "内容の概要", "保管場所",
                     "媒体（紙／電子）", "管理責任者", "アクセス可能者", "秘密表示の有無", "備考")
ANSWERS = ("はい", "いいえ", "該当なし")
SELF_CHECK_ITEMS = {
    "方針・規程": ("営業秘密の管理に関する基本方針を定めている",
               "情報管理規程（秘密情報の定義・区分・取扱い）を定めている",
               "規程を海外拠点の言語でも整備している"),
    "物理的管理": ("秘密情報の保管場所を施錠・入退室管理している",
               "秘密情報を記載した書類に「秘」等の表示をしている",
               "来訪者の立入範囲を制限している"),
    "技術的管理": ("秘密情報へのアクセス権限を必要な者に限定している",
               "パスワード・多要素認証等でシステムへのアクセスを管理している",
               "USBメモリ等の外部記録媒体の利用を制限している",
               "アクセスログを取得し定期的に確認している"),
    "人的管理": ("従業員と秘密保持契約（誓約書）を締結している",
             "退職者と退職時の秘密保持誓約を交わしている",
             "営業秘密管理に関する社員研修を実施している"),
    "海外拠点": ("海外拠点の秘密情報を把握・リスト化している",
             "現地の取引先・委託先と秘密保持契約を締結している",
             "現地法令（労働法・不正競争防止法等）に沿った管理をしている",
             "漏えい発生時の報告・対応手順を定めている"),
}
FIXED_DATE = dt.datetime(2026, 1, 1)  # regenerating gives the same metadata
_THIN = Side(style="thin")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEAD = PatternFill("solid", fgColor="DDEBF7")


def held_info_list() -> bytes:
    """保有情報リスト: a title row naming the program, the headers, 20 numbered empty rows."""
    book, sheet = _book(HELD_INFO_TITLE)
    _title(sheet, HELD_INFO_TITLE, len(HELD_INFO_HEADERS))
    sheet.append(["企業名：", None, None, "記入日：", None])
    sheet.append([])
    sheet.append(list(HELD_INFO_HEADERS))
    _header_row(sheet, 4, len(HELD_INFO_HEADERS))
    for number in range(1, 21):
        sheet.append([number] + [None] * (len(HELD_INFO_HEADERS) - 1))
        for cell in sheet[sheet.max_row]:
            cell.border = _BOX
    for letter, width in zip("ABCDEFGHIJ", (5, 24, 16, 30, 18, 12, 14, 18, 12, 20)):
        sheet.column_dimensions[letter].width = width
    _choices(sheet, "技術情報,営業情報", "C5:C24")
    _choices(sheet, "有,無", "I5:I24")
    return _save(book)


def self_check_sheet() -> bytes:
    """情報管理体制セルフチェックシート: items grouped by area, はい/いいえ/該当なし columns."""
    book, sheet = _book(SELF_CHECK_TITLE)
    headers = ("区分", "No.", "チェック項目", *ANSWERS, "備考")
    _title(sheet, SELF_CHECK_TITLE, len(headers))
    sheet.append(["企業名：", None, None, "記入日：", None])
    sheet.append([])
    sheet.append(list(headers))
    _header_row(sheet, 4, len(headers))
    number = 0
    for group, items in SELF_CHECK_ITEMS.items():
        for item in items:
            number += 1
            sheet.append([group, number, item, None, None, None, None])
            for cell in sheet[sheet.max_row]:
                cell.border = _BOX
    sheet.append([])
    sheet.append(["※該当する欄に「○」を記入してください。"])
    for letter, width in zip("ABCDEFG", (14, 5, 56, 8, 8, 10, 24)):
        sheet.column_dimensions[letter].width = width
    return _save(book)


def _book(title: str):
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    props = book.properties
    props.creator = props.lastModifiedBy = "JETRO 知的財産課"
    props.title = title
    props.created = props.modified = FIXED_DATE
    return book, sheet


def _title(sheet, title: str, width: int) -> None:
    sheet.append([f"{PROGRAM}　{title}"])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet["A1"].font = Font(bold=True, size=14)


def _header_row(sheet, row: int, width: int) -> None:
    for cell in sheet[row][:width]:
        cell.font, cell.fill, cell.border = Font(bold=True), _HEAD, _BOX
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)


def _choices(sheet, options: str, cells: str) -> None:
    rule = DataValidation(type="list", formula1=f'"{options}"', allow_blank=True)
    sheet.add_data_validation(rule)
    rule.add(cells)


def _save(book: Workbook) -> bytes:
    """The workbook's bytes, re-zipped with fixed entry dates (openpyxl stamps 'now')."""
    raw = io.BytesIO()
    book.save(raw)
    # openpyxl writes docProps/core.xml's modified time as the save time: put ours back.
    book.properties.modified = FIXED_DATE
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = _fixed_core(data)
            entry = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, data)
    return out.getvalue()


def _fixed_core(xml: bytes) -> bytes:
    """docProps/core.xml with dcterms:modified set to FIXED_DATE (openpyxl writes the clock)."""
    stamp = FIXED_DATE.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    return re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)", rb"\g<1>" + stamp + rb"\g<2>", xml)


def write(folder: Path = BLANK_DIR) -> list[Path]:
    """Write both documents into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in ((HELD_INFO_FILE, held_info_list()), (SELF_CHECK_FILE, self_check_sheet())):
        (folder / name).write_bytes(data)
        written.append(folder / name)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else BLANK_DIR):
        print(path)
