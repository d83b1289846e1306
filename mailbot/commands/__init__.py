"""Staff commands beyond the core ones, one module per area of the workflow.

Each module here (adoption, documents, schedule, hours, ...) adds its
commands to ``mailbot.cli.app`` when imported; ``mailbot.cli`` imports them
all. Keeping them apart keeps cli.py a table of contents, not a program.
"""
