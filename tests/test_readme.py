"""The README is part of the interface: its commands must exist and the CLI must be in it."""

from __future__ import annotations

import re
from pathlib import Path

import click

from aggregator.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def cli_commands() -> set[str]:
    found: set[str] = set()

    def walk(group: click.Group, prefix: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")
            else:
                found.add(f"{prefix}{name}")

    walk(main, "")
    return found


def test_every_cli_command_is_documented_and_every_documented_command_exists() -> None:
    documented = set(re.findall(r"^\| `aggregator ([a-z-]+(?: [a-z-]+)?)", README, re.M))
    assert documented == cli_commands()


def test_documented_options_exist() -> None:
    for command, options in re.findall(
        r"^\| `aggregator ([a-z ]+?) ((?:\[[^]]+\] ?)+)`", README, re.M
    ):
        cmd: click.Command = main
        for part in command.split():
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[part]
        declared = {opt for param in cmd.params for opt in getattr(param, "opts", [])}
        for option in re.findall(r"--[a-z-]+", options):
            assert option in declared, f"{command}: {option}"


def test_quickstart_is_two_make_commands_that_exist() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quickstart, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make sync", "make test"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^sync:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
