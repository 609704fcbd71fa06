"""data_cmds: filled in by its owner."""
import click

COMMANDS: list[click.Command] = []
