"""Schema migrations, one ordered set per backend: `cassandra/NNNN_name.cql`, `sqlite/NNNN_name.sql`.

A migration is applied once and recorded in the backend's `schema_migrations` table; every
statement in it is idempotent (`IF NOT EXISTS`) so that a migration interrupted half-way, or
run by two processes at once, can simply be run again. Never edit a released file: add the
next number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(cql|sql)$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(text: str) -> list[str]:
    """Splits a script on ';' at line ends, dropping '--' comment lines. (Our scripts keep
    no ';' inside string literals, so no CQL/SQL parser is needed.)"""
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    parts = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return [p.strip() for p in parts if p.strip()]


def load(backend: str) -> list[Migration]:
    """The migrations of `backend` ("cassandra" or "sqlite"), in version order."""
    folder = resources.files(__package__).joinpath(backend)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        found.append(
            Migration(int(match[1]), match[2], tuple(split_statements(entry.read_text("utf-8"))))
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate {backend} migration versions: {versions}")
    return found
