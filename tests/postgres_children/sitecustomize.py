"""Every Python process a test starts under --database postgresql: SQLite files go to PostgreSQL too.

tests/conftest.py puts this folder and the repository on the PYTHONPATH of
the test session (so of the `mailbot` commands, `python -c` and
multiprocessing children its tests start) and the server's port in
MAILBOT_TEST_POSTGRES_PORT. Python imports ``sitecustomize`` at start-up;
this one sends mailbot's engines to the same stand-in databases as the test
process (tests/postgres.py ``engines_on_postgres``).
"""

import os

if os.environ.get("MAILBOT_TEST_POSTGRES_PORT"):
    from mailbot import db
    from tests import postgres

    db.create_engine = postgres.engines_on_postgres(int(os.environ[postgres.PORT_VARIABLE]), db.create_engine)
