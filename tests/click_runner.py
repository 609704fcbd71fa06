"""click's CliRunner with stdout and stderr kept apart, on click 8.0-8.1 and on 8.2+.

Before 8.2, stderr goes into ``result.output`` unless the runner is made with
``mix_stderr=False``; 8.2 removed that parameter and always keeps
``result.stderr`` apart (its ``result.output`` then holds both streams). So
tests read ``result.stdout`` and ``result.stderr``, which mean the same on both.
"""
from __future__ import annotations

import inspect

from click.testing import CliRunner


def separate_streams_runner() -> CliRunner:
    """A CliRunner whose ``result.stderr`` is stderr alone and ``result.stdout`` stdout alone."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:  # click < 8.2
        return CliRunner(mix_stderr=False)
    return CliRunner()
