"""The alembic migrations of mailbot's database (env.py, versions/); driven by mailbot.schema.

There is no alembic.ini: mailbot.schema builds alembic's Config in code, so
the migrations ship inside the package and run from any working directory.
"""
