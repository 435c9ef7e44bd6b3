"""CLI command groups. Each module has `register(subparsers)` and sets `handler` on its parsers.

Add a command group by adding a module here and listing it in COMMAND_MODULES.
"""

from __future__ import annotations

from . import data, demo, imports, mapping, match, prices, push, simulate

COMMAND_MODULES = [demo, prices, data, imports, push, match, mapping, simulate]
