"""Step 03: the held-information list and the self-check sheet, sent and received.

(Being built for issue 5: until then the documents are recorded for staff.)
"""

from __future__ import annotations


def receive(handling, verdict) -> None:
    """Files in an application's thread: recorded for staff (no reply yet)."""
