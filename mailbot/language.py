"""Which language an applicant's mail is written in: Japanese first, English where they asked.

How an applicant asks: they write (or say on the phone) that they would
rather read English, and staff record it with ``mailbot language ID en``
(a row in mail_language). The application form has no language field today;
should one be added under the key ``mail_language`` ("ja"/"en"), it counts
when staff have set nothing. Everyone else gets ``[workflow] language``.
Staff notices are always Japanese and never come here.
"""

from __future__ import annotations

from sqlmodel import Session

from mailbot.errors import WorkflowError
from mailbot.models import Application, utcnow
from mailbot.render import LANGUAGES
from mailbot.tables.language import MailLanguage

FORM_FIELD = "mail_language"


def of(session: Session, services, app: Application | None) -> str:
    """The language of mail to this application's applicant (the default without one)."""
    default = services.settings.workflow.language
    if app is None or app.id is None:
        return default
    chosen = session.get(MailLanguage, app.id)
    if chosen is not None:
        return chosen.language
    asked = str((app.fields or {}).get(FORM_FIELD) or "").strip().lower()
    return asked if asked in LANGUAGES else default


def choose(session: Session, app: Application, language: str, *, by: str) -> MailLanguage:
    """Record the language staff were asked for; WorkflowError for one we have no templates in."""
    if language not in LANGUAGES:
        raise WorkflowError(f"application {app.reception_number}: language must be one of "
                            f"{', '.join(LANGUAGES)}, not {language!r}")
    row = session.get(MailLanguage, app.id) or MailLanguage(application_id=app.id, language=language, set_by=by)
    row.language, row.set_by, row.set_at = language, by, utcnow()
    session.add(row)
    return row
