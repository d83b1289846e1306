"""The one definition of the application form (申請書) layout.

Everything that prints the form (fill.py for the PDF, blank.py for the Word
file) and everything that reads it (read.py) takes its labels, keys, option
lists and order from here, so a label changed here changes everywhere.
See shared/spec/application-form.md for the form and the field table.
"""

from __future__ import annotations

from dataclasses import dataclass

TITLE = "海外における営業秘密漏えい対策支援事業 申請書"
ADDRESSEE = "独立行政法人日本貿易振興機構 知的財産課 御中"
SUBMITTED_LABEL = "提出日"
PLEDGE_HEADING = "誓約事項（該当する項目すべてにチェックしてください）"
SEAL_MARK = "印"

# The text printed before an option. The built-in CID fonts have no ☐/☑
# (reportlab drops them silently), so the PDF uses □/■, which the spec allows.
BOX_EMPTY = "□"
BOX_TICKED = "■"


@dataclass(frozen=True)
class Field:
    """One row of a section table: the label cell and how its value is typed.

    ``kind``: "text", "date", "month", "int", "number", "choice" (exactly one
    option), "multi" (one or more), "bool" (a two-option yes/no choice),
    "country". ``options`` are (printed label, normalised value) pairs.
    ``unit`` is printed after a number (名, 時間, %).
    """

    key: str
    label: str
    kind: str = "text"
    options: tuple[tuple[str, object], ...] = ()
    unit: str = ""
    seal_mark: bool = False
    lines: int = 1  # rows of text the value cell is drawn tall enough for
    aliases: tuple[str, ...] = ()  # other labels applicants retype it as


@dataclass(frozen=True)
class Section:
    """A heading and its two-column ruled table (label | value)."""

    title: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Pledge:
    """A checkbox line under the tables; True when ticked."""

    key: str
    text: str


# The country option for Europe carries the country's name inside （国名：…）.
EUROPE_LABEL = "欧州"
COUNTRY_OPTIONS = (
    ("中国", "CN"),
    ("タイ", "TH"),
    ("ベトナム", "VN"),
    ("インドネシア", "ID"),
    ("インド", "IN"),
    (EUROPE_LABEL, "EU"),
)

SUBMITTED_ON = Field("submitted_on", SUBMITTED_LABEL, "date")

SECTIONS: tuple[Section, ...] = (
    Section("1. 申請者", (
        Field("application_type", "申請区分", "choice",
              (("日本国内の法人", "domestic"), ("現地法人", "local"))),
        Field("company_name", "企業名"),
        Field("corporate_number", "法人番号"),
        Field("representative_title", "代表者役職"),
        Field("representative_name", "代表者氏名", seal_mark=True),
        Field("address", "本社所在地"),
        Field("industry", "業種"),
        Field("employees", "従業員数", "int", unit="名"),
    )),
    Section("2. 担当者", (
        Field("contact_name", "担当者氏名"),
        Field("contact_department", "所属・役職"),
        Field("contact_phone", "電話番号"),
        Field("contact_email", "E-mail", aliases=("Eメール", "メールアドレス", "Email")),
        Field("jetro_registered", "ジェトロお客様情報登録", "bool",
              (("登録済み", True), ("未登録", False))),
    )),
    Section("3. 対象国・地域", (
        Field("country", "対象国・地域", "country", COUNTRY_OPTIONS),
    )),
    Section("4. 海外拠点", (
        Field("base_status", "拠点の状況", "choice",
              (("既存", "existing"), ("設立予定", "planned"))),
        Field("base_kinds", "拠点形態", "multi",
              (("現地法人", "subsidiary"), ("工場", "factory"),
               ("駐在員事務所", "rep_office"))),
        Field("base_name", "拠点名称"),
        Field("base_address", "拠点所在地"),
        Field("base_established", "設立（予定）年月", "month"),
        Field("investment_ratio", "日本企業の出資比率（現地法人の場合）", "number", unit="%"),
    )),
    Section("5. 希望する支援内容", (
        Field("consultation_hours", "管理職向けコンサルテーション 希望時間", "int", unit="時間"),
        Field("training_hours", "管理職・社員向け研修 希望時間", "int", unit="時間"),
        Field("current_issues", "現在の課題・相談したい内容", lines=3),
    )),
)

PLEDGES: tuple[Pledge, ...] = (
    Pledge("pledge_commitment", "営業秘密管理体制の整備に積極的に取り組む意思があります。"),
    Pledge("pledge_experience", "日本企業において営業秘密管理体制構築の経験があります。"),
    Pledge("pledge_publicity",
           "事業終了後、ジェトロウェブサイト等での広報（事例紹介等）に協力することに同意します。"),
)


def table_fields() -> tuple[Field, ...]:
    """Every field printed in a section table, in printed order."""
    return tuple(f for section in SECTIONS for f in section.fields)


def labels(f: Field) -> tuple[str, ...]:
    """The printed label and its accepted aliases."""
    return (f.label, *f.aliases)


def all_keys() -> tuple[str, ...]:
    """Every key of the form, in the order of the spec's table."""
    return (SUBMITTED_ON.key, *(f.key for f in table_fields()), *(p.key for p in PLEDGES))


def field_by_key(key: str) -> Field:
    """The table field (or 提出日) with this key; KeyError when unknown."""
    for f in (SUBMITTED_ON, *table_fields()):
        if f.key == key:
            return f
    raise KeyError(key)


def option_line(f: Field, ticked: set, europe_name: str = "") -> str:
    """The value cell text of an option field, e.g. 「■既存　□設立予定」."""
    parts = []
    for label, value in f.options:
        box = BOX_TICKED if value in ticked else BOX_EMPTY
        if f.kind == "country" and value == "EU":
            label = f"{label}（国名：{europe_name or '　　　　'}）"
        parts.append(box + label)
    return "　".join(parts)


@dataclass(frozen=True)
class FormSpec:
    """One of the forms mailbot reads: what identifies it and what it holds.

    ``header`` fields are printed above the tables (提出日); ``seal`` says
    whether the form is stamped (the application) or not (the consultation).
    """

    name: str
    title: str
    header: tuple[Field, ...]
    sections: tuple[Section, ...]
    pledges: tuple[Pledge, ...] = ()
    seal: bool = False

    def __hash__(self) -> int:
        # The reader's caches are keyed by the spec and looked up per text line: some 2,900
        # hashes of every field and section a read. Computed once (it is frozen).
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = hash((self.name, self.title, self.header, self.sections, self.pledges, self.seal))
            object.__setattr__(self, "_hash", value)
            return value

    def __getstate__(self) -> dict:
        # A string's hash differs between processes: a pickled spec recomputes its own.
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    def table_fields(self) -> tuple[Field, ...]:
        """Every field printed in a section table, in printed order."""
        return tuple(f for section in self.sections for f in section.fields)

    def fields(self) -> tuple[Field, ...]:
        """Header and table fields: every field that has a label."""
        return (*self.header, *self.table_fields())

    def field_by_key(self, key: str) -> Field:
        """The field with this key; KeyError when the form has none."""
        for f in self.fields():
            if f.key == key:
                return f
        raise KeyError(key)

    def all_keys(self) -> tuple[str, ...]:
        """Every key of the form, in printed order."""
        return (*(f.key for f in self.fields()), *(p.key for p in self.pledges))


APPLICATION = FormSpec("application", TITLE, (SUBMITTED_ON,), SECTIONS, PLEDGES, seal=True)
