"""Tables of the later workflow steps, one module per area, beside the core in models.py.

Importing this package imports every module in it, so ``db.make_engine``
creates all the tables.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
