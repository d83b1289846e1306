"""What in a PDF would act when a person opens it: scripts, launched programs, embedded files.

mailbot never runs any of it (pdfplumber, pypdf and tesseract read, they do
not execute). But staff open the applicant's PDF in Acrobat, where a script
on opening, a link that starts a program or a file carried inside does act.
So a form is read as usual and the reading names what it carries
(``FormReading.active_content``); the "active_content" check turns that into
a warning staff see on the application and in the digest.

Looked at: the document's /OpenAction and /AA, document-level scripts
(/Names /JavaScript), embedded files (/Names /EmbeddedFiles, file
attachment annotations), and each page's /AA and annotation actions (/A,
following /Next chains). Not flagged: a form field's own /AA (the format and
keystroke scripts Acrobat writes into fillable forms: they run on typing,
and every Acrobat form has them).
"""

from __future__ import annotations

import pypdf
from pypdf.generic import ArrayObject, DictionaryObject

#: Action types (/S) that act outside reading the page, by the name staff are told.
ACTING = {"/JavaScript": "JavaScript", "/Launch": "Launch", "/ImportData": "ImportData",
          "/SubmitForm": "SubmitForm", "/GoToE": "EmbeddedFile"}
#: Actions followed through /Next per starting action: a chain longer than this is hostile anyway.
MAX_CHAIN = 32


def find(reader: pypdf.PdfReader) -> tuple[str, ...]:
    """The kinds of active content in the document, sorted ("EmbeddedFile", "JavaScript", ...)."""
    found: set[str] = set()
    root = _dict(reader.trailer.get("/Root"))
    _actions(root.get("/OpenAction"), found)
    _trigger_actions(root.get("/AA"), found)
    names = _dict(root.get("/Names"))
    if "/JavaScript" in names:
        found.add("JavaScript")
    if "/EmbeddedFiles" in names:
        found.add("EmbeddedFile")
    for page in reader.pages:
        _trigger_actions(page.get("/AA"), found)
        for annotation in _array(page.get("/Annots")):
            _annotation(_dict(annotation), found)
    return tuple(sorted(found))


def _annotation(annotation: DictionaryObject, found: set[str]) -> None:
    """A link's or button's action; a file attachment annotation carries a file."""
    if annotation.get("/Subtype") == "/FileAttachment":
        found.add("EmbeddedFile")
    _actions(annotation.get("/A"), found)


def _trigger_actions(triggers: object, found: set[str]) -> None:
    """An /AA dictionary: an action per trigger (open, close, page shown ...)."""
    for action in _dict(triggers).values():
        _actions(action, found)


def _actions(action: object, found: set[str]) -> None:
    """One action and those chained after it through /Next (a dictionary or an array of them)."""
    pending, seen = [action], 0
    while pending and seen < MAX_CHAIN:
        current = _resolved(pending.pop())
        if isinstance(current, ArrayObject):
            pending.extend(current)
            continue
        if not isinstance(current, DictionaryObject):
            continue  # an /OpenAction may be a destination (an array of page and view), not an action
        seen += 1
        kind = ACTING.get(str(current.get("/S")))
        if kind:
            found.add(kind)
        if "/Next" in current:
            pending.append(current["/Next"])


def _resolved(value: object) -> object:
    return value.get_object() if hasattr(value, "get_object") else value


def _dict(value: object) -> DictionaryObject:
    value = _resolved(value)
    return value if isinstance(value, DictionaryObject) else DictionaryObject()


def _array(value: object) -> ArrayObject:
    value = _resolved(value)
    return value if isinstance(value, ArrayObject) else ArrayObject()
