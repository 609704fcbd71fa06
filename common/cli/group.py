"""The `nia` command: one click group, one module per group of commands (`from common.cli import main`).

Each command module exposes ``COMMANDS``, a list of click commands, and keeps
heavy imports (OpenCV, torch, pyarrow) inside the command functions so that
``nia --help`` stays instant.
"""
from __future__ import annotations

import click  # the package's __init__ has set OpenMP's wait policy before anything imports torch

from common import __version__
from common.cli import clips_cmds, data_cmds, report_cmds, suite_cmds, synth_cmds, targets_cmds


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nia")
def main() -> None:
    """NIA display-gaze eye dataset: prepare, index, audit, split, derive targets, report.

    A typical run on the synthetic dataset:

    \b
        nia synth build/synth --subjects 6 --seed 0
        nia index build/synth --out build/manifest.parquet
        nia split build/manifest.parquet
        nia crops build/manifest.parquet build/crops
        nia clips build/manifest.parquet build/clips
    """


for _module in (data_cmds, targets_cmds, clips_cmds, synth_cmds, report_cmds, suite_cmds):
    for _command in _module.COMMANDS:
        main.add_command(_command)
