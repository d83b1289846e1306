"""The fillable (AcroForm) form: filled by fillable.py, read back by acroform.py.

Every PDF here is made by code; the only committed PDF is the shipped blank,
and a test checks that the code still makes exactly those bytes.
"""

import io
from functools import lru_cache

import pdfplumber
import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ByteStringObject, NameObject, TextStringObject

from mailbot.forms import layout
from mailbot.forms.acroform import decode_text, read_acroform, resolve
from mailbot.forms.consultation import (
    CONSULTATION,
    render_consultation,
    sample_consultation_values,
)
from mailbot.forms.fill import render_application, sample_values
from mailbot.forms.fillable import (
    BLANK_PATH,
    blank_fillable,
    blank_path,
    render_fillable,
)
from mailbot.forms.read import read_form
from mailbot.forms.reading import NO_SEAL

SAMPLE = sample_values()


def read(data: bytes):
    """read_acroform as read.py calls it: with the open pdfplumber PDF."""
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return read_acroform(data, pdf)


@lru_cache
def sample_reading(seal: str = "none"):
    """The sample application, filled in and read back."""
    return read(render_fillable(SAMPLE, seal=seal))


def rewritten(data: bytes, change) -> bytes:
    """The PDF after ``change(widget)`` was applied to every widget dictionary."""
    writer = PdfWriter(clone_from=io.BytesIO(data))
    for annot in writer.pages[0]["/Annots"]:
        change(annot.get_object())
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("key", layout.all_keys())
def test_every_field_round_trips(key):
    assert sample_reading().fields[key] == SAMPLE[key]


def test_nothing_more_than_the_sample_is_read():
    reading = sample_reading()
    assert reading.fields == SAMPLE
    assert (reading.form, reading.source, reading.pages, reading.form_page) == ("application", "acroform", 1, 1)


def test_originals_keep_what_was_typed():
    originals = sample_reading().originals
    assert originals["employees"] == "1,200名"
    assert originals["company_name"] == "株式会社サンプル精機"
    assert originals["base_kinds"] == "■現地法人　■工場　□駐在員事務所"


def test_japanese_spellings_are_normalised_and_kept():
    values = sample_values(company_name="㈱テスト商事", employees="１２名", submitted_on="令和8年11月26日",
                           address="大阪府大阪市北区梅田１－２－３", contact_phone="０６－１２３４－５６７８",
                           consultation_hours="１０時間")
    reading = read(render_fillable(values))
    assert reading.fields["employees"] == 12 and reading.fields["consultation_hours"] == 10
    assert reading.fields["submitted_on"] == "2026-11-26"
    assert reading.fields["company_name"] == "㈱テスト商事"
    assert reading.fields["address"] == "大阪府大阪市北区梅田１－２－３"
    assert reading.fields["contact_phone"] == "06-1234-5678"
    assert reading.originals["employees"] == "１２名"


def test_multi_line_free_text():
    issues = "一行目の課題。\n二行目: access control"
    assert read(render_fillable(sample_values(current_issues=issues))).fields["current_issues"] \
        == "一行目の課題。二行目: access control"


OPTION_CASES = [
    ("application_type", "local"), ("application_type", "domestic"),
    ("jetro_registered", False), ("jetro_registered", True),
    *(("country", code) for code in ("CN", "TH", "VN", "ID", "IN", "EU:DE", "EU:FR", "EU:GB")),
    ("base_status", "planned"), ("base_status", "existing"),
    ("base_kinds", ["factory"]), ("base_kinds", ["subsidiary", "rep_office"]),
    ("base_kinds", ["subsidiary", "factory", "rep_office"]),
]


@pytest.mark.parametrize(("key", "value"), OPTION_CASES)
def test_every_checkbox_group(key, value):
    assert read(render_fillable(sample_values(**{key: value}))).fields[key] == value


def test_unticked_pledges_are_false():
    fields = read(render_fillable(sample_values(pledge_experience=None, pledge_publicity=False))).fields
    assert (fields["pledge_commitment"], fields["pledge_experience"], fields["pledge_publicity"]) == (True, False, False)


def test_a_group_with_nothing_ticked_is_absent():
    fields = read(render_fillable(sample_values(base_kinds=None, country=None))).fields
    assert "base_kinds" not in fields and "country" not in fields


def test_blank_fields_are_absent_not_empty():
    fields = read(render_fillable(sample_values(industry=None, contact_department=None))).fields
    assert "industry" not in fields and "contact_department" not in fields


# ---------------------------------------------------------------- not ours / not filled

def test_the_blank_fillable_form_reads_as_none():
    assert read(blank_fillable()) is None


def test_a_pdf_without_a_form_reads_as_none():
    assert read(render_application(SAMPLE, seal="none")) is None


def test_widgets_with_other_names_read_as_none():
    other = rewritten(render_fillable(SAMPLE), lambda w: w.__setitem__(NameObject("/T"),
                                                                       TextStringObject(f"Text{id(w)}")))
    assert read(other) is None


# ---------------------------------------------------------------- other tools' names and strings

JAPANESE_NAMES = {
    "company_name": "企業名", "representative_name": "代表者氏名", "employees": "従業員数：",
    "submitted_on": "提 出 日", "contact_email": "E-mail（必須）",
    "country.EU": "対象国・地域.欧州", "country_europe_name": "国名",
    "base_kinds.subsidiary": "拠点形態.現地法人", "base_kinds.factory": "拠点形態.工場",
    "pledge_commitment": layout.PLEDGES[0].text,
}


def _japanese_name(widget):
    name = str(widget["/T"])
    if name in JAPANESE_NAMES:
        widget[NameObject("/T")] = TextStringObject(JAPANESE_NAMES[name])  # written as UTF-16BE
    else:  # fields a tool named that we do not know are ignored
        widget[NameObject("/T")] = TextStringObject(f"Untitled {name}")


def test_fields_named_by_their_japanese_labels():
    data = rewritten(render_fillable(sample_values(country="EU:DE")), _japanese_name)
    reading = read(data)
    expected = {k: v for k, v in sample_values(country="EU:DE").items()
                if k in {n.split(".")[0] for n in JAPANESE_NAMES} - {"country_europe_name"}}
    assert reading.fields == expected
    assert (reading.seal.present, reading.seal.near_field) == (False, False)


@pytest.mark.parametrize(("name", "key", "option"), [
    ("企業名", "company_name", None), ("対象国・地域.インドネシア", "country", "ID"),
    ("対象国・地域.インド", "country", "IN"), ("ジェトロお客様情報登録.未登録", "jetro_registered", False),
    ("country.VN", "country", "VN"), ("対象国・地域", "country", None),
])
def test_names_resolve(name, key, option):
    target = resolve(name)
    assert (target.key, target.option) == (key, option)


def test_a_radio_style_group_named_after_the_field():
    def as_radio(widget):  # one field 対象国・地域 whose /V names the choice, as some tools write
        if str(widget["/T"]) == "country.VN":
            widget[NameObject("/T")] = TextStringObject("対象国・地域")
            widget[NameObject("/AS")] = NameObject("/ベトナム")
        elif str(widget["/T"]).startswith("country"):
            widget[NameObject("/T")] = TextStringObject("unused " + str(widget["/T"]))
    assert read(rewritten(render_fillable(SAMPLE), as_radio)).fields["country"] == "VN"


@pytest.mark.parametrize("text", ["山田 太郎", "山田太郎"])
@pytest.mark.parametrize("encode", [
    lambda t: b"\xfe\xff" + t.encode("utf-16-be"),
    lambda t: b"\xff\xfe" + t.encode("utf-16-le"),
    lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
    lambda t: t.encode("utf-8"),
    lambda t: t.encode("utf-16-be"),  # no BOM: a writer's mistake, still read
], ids=["utf16be-bom", "utf16le-bom", "utf8-bom", "utf8", "utf16be-no-bom"])
def test_value_encodings(encode, text):
    assert decode_text(ByteStringObject(encode(text))) == text


def test_pdfdocencoding_and_ascii():
    assert decode_text(ByteStringObject(b"M\xfcller")) == "Müller"
    assert decode_text(TextStringObject("03-1234-5678")) == "03-1234-5678"


def test_a_value_stored_as_utf8_bytes_in_the_pdf():
    def utf8_value(widget):
        if str(widget["/T"]) == "company_name":
            widget[NameObject("/V")] = ByteStringObject("株式会社サンプル精機".encode())
    reading = read(rewritten(render_fillable(SAMPLE), utf8_value))
    assert reading.fields["company_name"] == "株式会社サンプル精機"


# ---------------------------------------------------------------- the seal

@pytest.mark.parametrize(("seal", "present", "near", "color"), [
    ("none", False, False, None),
    ("image", True, True, "red"),
    ("stamp_annotation", True, True, "red"),
    ("misplaced", True, False, "red"),
    ("black_stamp", True, True, "black"),
])
def test_seal_variants(seal, present, near, color):
    found = sample_reading(seal).seal
    assert (found.present, found.near_field, found.color) == (present, near, color)
    if present:
        assert found.page == 1 and found.bbox is not None


def test_the_stamp_is_an_annotation_with_an_appearance():
    page = PdfReader(io.BytesIO(render_fillable(SAMPLE, seal="stamp_annotation"))).pages[0]
    stamps = [a.get_object() for a in page["/Annots"] if a.get_object()["/Subtype"] == "/Stamp"]
    assert len(stamps) == 1 and "/N" in stamps[0]["/AP"]


def test_the_misplaced_stamp_is_found_where_it_was_put():
    assert sample_reading("misplaced").seal.bbox[1] > 700


# ---------------------------------------------------------------- the shipped blank

def test_the_shipped_blank_is_reproduced_by_code():
    assert BLANK_PATH.read_bytes() == blank_fillable(), "run: python -m mailbot.forms.fillable"


def test_the_shipped_blank_has_a_widget_per_value():
    names = set(PdfReader(BLANK_PATH).get_fields())
    for f in (layout.SUBMITTED_ON, *layout.table_fields()):
        assert f.key in names or {f"{f.key}.{v}" for _l, v in f.options} <= names
    assert {p.key for p in layout.PLEDGES} <= names and "country_europe_name" in names


# ---------------------------------------------------------------- the consultation desk form

CONSULT = sample_consultation_values()


def consultation(values: dict) -> bytes:
    """The fillable consultation form filled in with ``values``."""
    return render_fillable(values, spec=CONSULTATION)


@lru_cache
def consultation_reading():
    """The sample consultation request, filled in and read back."""
    return read(consultation(CONSULT))


@pytest.mark.parametrize("key", CONSULTATION.all_keys())
def test_every_consultation_field_round_trips(key):
    assert consultation_reading().fields[key] == CONSULT[key]


def test_the_consultation_form_is_told_from_the_application():
    reading = consultation_reading()
    assert reading.fields == CONSULT
    assert (reading.form, reading.source, reading.pages, reading.form_page) == ("consultation", "acroform", 1, 1)
    assert reading.seal == NO_SEAL and reading.seal.present is False


@pytest.mark.parametrize("values", [
    CONSULT,
    sample_consultation_values(country="EU:FR", preferred_dates=["2027-01-15"]),
    sample_consultation_values(country="EU:GB", preferred_dates=["2026-12-03T09:00", "2026-12-10T16:30"]),
], ids=["sample", "eu-fr-one-wish", "eu-gb-two-wishes"])
def test_the_same_as_the_text_reader_reads_the_printed_form(values):
    """Same fields (preferred_dates the same ISO list) whichever kind of PDF was sent."""
    assert read(consultation(values)).fields == read_form(render_consultation(values)).fields == values


@pytest.mark.parametrize("code", ["CN", "TH", "VN", "ID", "IN", "EU:DE", "EU:FR", "EU:GB"])
def test_every_consultation_country(code):
    assert read(consultation(sample_consultation_values(country=code))).fields["country"] == code


def test_consultation_missing_fields_are_absent():
    values = sample_consultation_values(contact_phone=None, topic=None, country=None, preferred_dates=None)
    reading = read(consultation(values))
    assert reading.form == "consultation" and reading.fields == values
    assert not {"contact_phone", "topic", "country", "preferred_dates"} & reading.fields.keys()


def test_an_unreadable_wish_is_kept_as_text():
    reading = read(consultation(sample_consultation_values(preferred_dates="来月のどこか")))
    assert reading.fields["preferred_dates"] == "来月のどこか"


def test_wishes_typed_in_the_applicants_own_way():
    dates = "第1希望 令和8年12月3日(木) 14:00〜15:00\n第2希望 2026/12/4 午後2時"
    reading = read(consultation(sample_consultation_values(preferred_dates=dates)))
    assert reading.fields["preferred_dates"] == ["2026-12-03T14:00", "2026-12-04T14:00"]


def test_the_blank_consultation_form_reads_as_none():
    assert read(blank_fillable(CONSULTATION)) is None


def test_read_form_reads_the_fillable_consultation_form():
    reading = read_form(consultation(CONSULT))
    assert (reading.form, reading.source, reading.fields, reading.seal) == ("consultation", "acroform", CONSULT, NO_SEAL)


def test_the_consultation_form_takes_no_seal():
    with pytest.raises(ValueError):
        render_fillable(CONSULT, seal="stamp_annotation", spec=CONSULTATION)


def test_the_application_still_reads_as_the_application_with_japanese_names():
    data = rewritten(render_fillable(SAMPLE), _japanese_name)
    assert read(data).form == "application"


@pytest.mark.parametrize(("name", "key"), [
    ("相談内容", "topic"), ("希望日時", "preferred_dates"), ("希望日時（第3希望まで）", "preferred_dates"),
    ("preferred_dates", "preferred_dates"), ("対象国・地域.タイ", "country"),
])
def test_consultation_names_resolve(name, key):
    assert resolve(name, CONSULTATION).key == key


def test_consultation_fields_named_by_their_japanese_labels():
    labels = {f.key: f.label for f in CONSULTATION.fields()}

    def japanese(widget):
        name = str(widget["/T"])
        if name in labels:
            widget[NameObject("/T")] = TextStringObject(labels[name])
    reading = read(rewritten(consultation(CONSULT), japanese))
    assert reading.form == "consultation"
    assert reading.fields == CONSULT  # the country boxes keep their own names (country.TH)


def test_the_shipped_consultation_blank_is_reproduced_by_code():
    path = blank_path(CONSULTATION)
    assert path.name == "consultation-form-fillable.pdf"
    assert path.read_bytes() == blank_fillable(CONSULTATION), "run: python -m mailbot.forms.fillable"


def test_the_shipped_consultation_blank_has_a_widget_per_value():
    names = set(PdfReader(blank_path(CONSULTATION)).get_fields())
    options = {f"country.{v}" for _l, v in CONSULTATION.field_by_key("country").options}
    plain = {f.key for f in CONSULTATION.fields() if not f.options}
    assert names == plain | options | {"country_europe_name"}
