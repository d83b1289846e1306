"""forms/active.py: what in a PDF would act when staff open it."""

from __future__ import annotations

import io

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (ArrayObject, DictionaryObject, NameObject, NumberObject, TextStringObject,
                           create_string_object)

from mailbot.forms import active
from mailbot.forms.read import read_form
from tests.forms import hostile


def action(kind: str, **extra) -> DictionaryObject:
    entries = {NameObject("/S"): NameObject(kind)}
    entries.update({NameObject(f"/{key}"): value for key, value in extra.items()})
    return DictionaryObject(entries)


def written(writer: PdfWriter) -> PdfReader:
    buffer = io.BytesIO()
    writer.write(buffer)
    return PdfReader(io.BytesIO(buffer.getvalue()))


def the_form() -> PdfWriter:
    return PdfWriter(clone_from=io.BytesIO(hostile.form()))


def annotate(writer: PdfWriter, annotation: DictionaryObject) -> None:
    annotation.update({NameObject("/Type"): NameObject("/Annot"),
                       NameObject("/Rect"): ArrayObject([NumberObject(n) for n in (0, 0, 10, 10)])})
    page = writer.pages[0]
    annots = page.get("/Annots")
    annots = annots.get_object() if annots is not None else ArrayObject()
    annots.append(writer._add_object(annotation))
    page[NameObject("/Annots")] = annots


def test_the_plain_form_carries_nothing():
    assert active.find(PdfReader(io.BytesIO(hostile.form()))) == ()
    assert read_form(hostile.form()).active_content == ()


def test_a_script_on_opening_is_found_and_the_form_still_reads():
    reading = read_form(hostile.javascript_open_action())
    assert (reading.form, reading.active_content) == ("application", ("JavaScript",))


def test_a_launch_chained_after_a_harmless_action_is_found():
    writer = the_form()
    harmless = action("/GoTo", D=ArrayObject([writer.pages[0].indirect_reference, NameObject("/Fit")]),
                      Next=writer._add_object(action("/Launch", F=create_string_object("calc.exe"))))
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(harmless)
    assert active.find(written(writer)) == ("Launch",)


def test_an_opening_destination_is_not_an_action():
    writer = the_form()
    writer._root_object[NameObject("/OpenAction")] = ArrayObject(
        [writer.pages[0].indirect_reference, NameObject("/Fit")])
    assert active.find(written(writer)) == ()


def test_document_scripts_embedded_files_and_link_actions_are_each_named():
    writer = the_form()
    writer.add_attachment("payload.exe", b"MZ\x90\x00")
    script = action("/JavaScript", JS=TextStringObject("app.alert('document level');"))
    names = writer._root_object["/Names"].get_object()
    names[NameObject("/JavaScript")] = DictionaryObject(
        {NameObject("/Names"): ArrayObject([create_string_object("start"), writer._add_object(script)])})
    annotate(writer, DictionaryObject({NameObject("/Subtype"): NameObject("/Link"),
                                       NameObject("/A"): action("/SubmitForm", F=TextStringObject("http://x"))}))
    assert active.find(written(writer)) == ("EmbeddedFile", "JavaScript", "SubmitForm")


def test_a_page_open_trigger_is_found_but_a_form_fields_format_script_is_not():
    writer = the_form()
    annotate(writer, DictionaryObject({
        NameObject("/Subtype"): NameObject("/Widget"), NameObject("/FT"): NameObject("/Tx"),
        NameObject("/AA"): DictionaryObject({NameObject("/F"): action("/JavaScript", JS=TextStringObject(
            "AFNumber_Format(0, 0, 0, 0, '', true);"))})}))
    assert active.find(written(writer)) == ()  # what Acrobat writes into every fillable form
    writer.pages[0][NameObject("/AA")] = DictionaryObject(
        {NameObject("/O"): action("/JavaScript", JS=TextStringObject("this.print();"))})
    assert active.find(written(writer)) == ("JavaScript",)


def test_an_endless_next_chain_ends():
    writer = the_form()
    first = action("/GoTo", D=ArrayObject([writer.pages[0].indirect_reference, NameObject("/Fit")]))
    reference = writer._add_object(first)
    first[NameObject("/Next")] = reference  # the action is its own next
    writer._root_object[NameObject("/OpenAction")] = reference
    assert active.find(written(writer)) == ()
