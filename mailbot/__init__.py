"""mailbot: the e-mail intake of JETRO's overseas trade-secret leakage prevention support.

One e-mail's path, room by room (each a module or package here):
intake (IMAP -> raw bytes) -> parse (MIME -> InboundMessage) -> classify ->
extract (PDF -> FormReading) -> check (rules/ -> Problems) -> admit (queue, cap) ->
workflow (state, history) -> outbox (SMTP sender). See README.md.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The project root when run from a checkout: where rules/ and templates/ live.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
