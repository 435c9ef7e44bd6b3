"""The README documents every setting a user can reach (datasette style: a new option without
docs fails here).

Checked against the code itself: every CLI command, sub-command and long option from the argparse
tree, every `WALLETA_*` environment variable the code reads, every key of the Streamlit secrets
example, and every bench script.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from walleta.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CODE_DIRS = ("walleta", "pages")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    """('walleta import csv', parser), ... for every command and sub-command."""
    found = []
    for name, sub in _subparsers(build_parser()).items():
        found.append((f"walleta {name}", sub))
        found.extend((f"walleta {name} {inner}", parser) for inner, parser in _subparsers(sub).items())
    return found


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(
        option
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    )


def _env_vars() -> set[str]:
    names: set[str] = set()
    files = [ROOT / "app.py", *(p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py"))]
    for path in files:
        names.update(re.findall(r"\bWALLETA_[A-Z][A-Z0-9_]*", path.read_text(encoding="utf-8")))
    return names


def test_every_command_is_documented() -> None:
    commands = _commands()
    assert len(commands) > 10  # the walk found the tree
    missing = [name for name, _ in commands if name not in README]
    assert not missing, f"README.md does not mention: {missing}"


@pytest.mark.parametrize("command", [name for name, _ in _commands()])
def test_every_option_of_a_command_is_documented(command: str) -> None:
    parser = dict(_commands())[command]
    missing = [option for option in _long_options(parser) if option not in README]
    assert not missing, f"README.md does not mention the {command} options {missing}"


def test_global_options_are_documented() -> None:
    missing = [option for option in _long_options(build_parser()) if option != "--version" and option not in README]
    assert not missing, f"README.md does not mention the global options {missing}"


def test_every_environment_variable_is_documented() -> None:
    names = _env_vars()
    assert "WALLETA_DATABASE_URL" in names  # the scan reads the code
    missing = sorted(name for name in names if name not in README)
    assert not missing, f"README.md does not mention: {missing}"


def test_every_secrets_key_is_documented() -> None:
    example = (ROOT / ".streamlit" / "secrets.toml.example").read_text(encoding="utf-8")
    keys = re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", example, flags=re.M)
    assert "OPENAI_ADMIN_KEY" in keys
    missing = [key for key in keys if key not in README]
    assert not missing, f"README.md does not mention the secrets {missing}"


def test_every_bench_script_is_documented() -> None:
    scripts = sorted(p.name for p in (ROOT / "bench").glob("*.py"))
    missing = [name for name in scripts if f"bench/{name}" not in README]
    assert not missing, f"README.md does not mention {missing}"


def test_changelog_and_reliability_doc_exist() -> None:
    assert "## Unreleased" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    reliability = (ROOT / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    assert "docs/RELIABILITY.md" in README and "events lost" in reliability
