"""The commands reference is mkdocs-click's rendering of the click commands: each command and option
must be on it, with words that say what it does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from mkdocs_click._docs import make_command_docs

from ovsvx.cli.main import main

REPO = Path(__file__).resolve().parent.parent


def commands(group: click.Command, path: str = "ovsvx") -> Iterator[tuple[str, click.Command]]:
    yield path, group
    if isinstance(group, click.Group):
        for name, command in sorted(group.commands.items()):
            yield from commands(command, f"{path} {name}")


PAGE = "\n".join(make_command_docs("ovsvx", main, depth=1, style="table", list_subcommands=True))


@pytest.mark.parametrize("path, command", list(commands(main)), ids=lambda v: v if isinstance(v, str) else "")
def test_each_command_and_option_is_on_the_reference_page_with_its_help(path: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"{path} has no help"
    words = path.split()
    assert re.search(f"^{'#' * (len(words) + 1)} {words[-1]}$", PAGE, re.MULTILINE), path
    for option in command.params:
        if isinstance(option, click.Option) and not option.hidden:
            assert (option.help or "").strip(), f"{path} {option.opts[0]} has no help"
            assert all(flag in PAGE for flag in option.opts), (path, option.opts)


def test_the_commands_page_is_rendered_from_the_cli() -> None:
    page = (REPO / "docs" / "reference" / "commands.md").read_text()
    assert ":module: ovsvx.cli.main" in page and ":command: main" in page
