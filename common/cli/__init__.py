"""The `nia` command (`common.cli.group`) and the command-line helpers the entry points share.

`main`, the click group, is loaded on first use: an entry point that imports
`common.cli.entry` (options, exit codes) or `common.cli.prepared_input`
does not load every `nia` command module.
"""
from __future__ import annotations

from typing import Any

from common.cores import settle_wait_policy

settle_wait_policy()  # first (the entry helpers import torch): libgomp reads OMP_WAIT_POLICY once, when it loads


def __getattr__(name: str) -> Any:
    if name == "main":
        from common.cli.group import main

        return main
    raise AttributeError(f"module 'common.cli' has no attribute {name!r}")
