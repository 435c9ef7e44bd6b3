"""Schema upgrades, one function per version step.

Policy: the schema version is stored in `walleta_meta.schema_version`. On open, tables that do
not exist yet are created (additive changes need no step), then each step whose version is above
the stored one runs in order, inside the same transaction that records the new version. A
database newer than the code is refused with `SchemaError` rather than guessed at. Steps must be
written in SQL that runs on SQLite and PostgreSQL. Version 1 is the first published schema.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["MIGRATIONS", "steps_after"]

Step = Callable[[Any, str], None]

# version -> the step that upgrades a database at version-1 to it.
MIGRATIONS: dict[int, Step] = {}


def steps_after(version: int) -> list[Step]:
    """The upgrade steps to run, in order, for a database at `version`."""
    return [MIGRATIONS[v] for v in sorted(MIGRATIONS) if v > version]
