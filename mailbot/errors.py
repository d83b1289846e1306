"""One exception tree for mailbot.

    MailbotError
    ├── ConfigError            config.toml or an environment override is wrong (names the key)
    ├── RulesError             a file in rules/ is wrong (names the file and the entry)
    ├── TemplateError          a mail template is missing or fails to render
    ├── SchemaError            the database is not at this mailbot's schema (names `mailbot db upgrade`)
    ├── MailError              anything about one inbound message
    │   ├── ParseError         the MIME structure cannot be read (message is quarantined raw)
    │   └── PdfError           an attachment cannot be read as a PDF (code + message)
    ├── WorkflowError          an illegal state change (names the state)
    └── TransportError         talking to a mail server failed
        ├── ImapError          login, select, fetch or move failed
        └── SmtpError          sending failed (temporary unless .permanent)

Catch the narrowest class that lets the caller do something useful; a
message-level error (MailError) never stops the daemon, it quarantines the
message and shows it to staff.
"""


class MailbotError(Exception):
    """Base of every error mailbot raises on purpose."""


class ConfigError(MailbotError):
    """The configuration is invalid; the message names the key."""


class RulesError(MailbotError):
    """A rules/*.toml file is invalid; the message names the file and entry."""


class TemplateError(MailbotError):
    """A template is missing or cannot be rendered."""


class SchemaError(MailbotError):
    """The database's schema revision is not this mailbot's: what it is at, what is needed, what to run."""


class MailError(MailbotError):
    """A problem with one inbound message."""


class ParseError(MailError):
    """The message's MIME structure cannot be read."""


class PdfError(MailError):
    """A PDF cannot be read at all.

    ``code`` is stable and machine-readable (``not_pdf``, ``encrypted``,
    ``broken``, ``too_large``, ``too_many_pages``, ``timeout``); ``message`` is
    Japanese text fit for the applicant or staff.
    """

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class WorkflowError(MailbotError):
    """A state change that the workflow does not allow."""


class TransportError(MailbotError):
    """A mail server could not be reached or refused a command."""


class ImapError(TransportError):
    """IMAP login, select, fetch or move failed."""


class SmtpError(TransportError):
    """Sending a message failed; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent
