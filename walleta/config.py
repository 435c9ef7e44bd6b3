"""Where things live: the database URL, the data folder, the bundled catalog.

Resolution order for the database URL: an explicit argument (CLI `--db`, app setting), then the
`WALLETA_DATABASE_URL` environment variable, then a SQLite file `data/walleta.db` in the project.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROJECT_DIR", "DATA_DIR", "default_database_url", "resolve_database_url"]

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_DIR / "data"
ENV_DATABASE_URL = "WALLETA_DATABASE_URL"


def default_database_url() -> str:
    """The SQLite file under `data/` used when nothing else is configured."""
    return f"sqlite:///{DATA_DIR / 'walleta.db'}"


def resolve_database_url(explicit: str | None = None) -> str:
    """Explicit URL, else $WALLETA_DATABASE_URL, else the default SQLite file."""
    if explicit:
        return explicit
    return os.environ.get(ENV_DATABASE_URL) or default_database_url()
