"""The docs cover every CLI command, every setting, and every page the README links."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from charter.cli import _parser
from charter.config import Config

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    for field in dataclasses.fields(Config):
        assert f"CHARTER_{field.name.upper()}" in text, field.name


def test_every_cli_command_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    parser = _parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands
    for name in commands:
        assert f"charter {name}" in text, name


def test_every_cli_option_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    parser = _parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for sub in [parser, *subparsers.values()]:
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert option in text, (sub.prog, option)


def test_readme_links_resolve_and_show_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    links = re.findall(r"\]\((docs/[^)]+)\)", readme)
    assert links
    for link in links:
        assert (ROOT / link).exists(), link
