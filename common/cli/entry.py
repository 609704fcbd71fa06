"""The one place where every command's outcome becomes an exit code and a line.

Exit codes of every command and entry point: 0 = PASS (or done), 1 = the
metric misses the threshold (FAIL), 2 = no verdict / could not run (bad
input, missing file, crash), with a one-line reason on stderr. Library code
raises plain exceptions (`RunError`, `ValueError`, `FileNotFoundError`, ...);
only this module turns them into messages, so no command exits 1 for an
error that is not a FAIL.
"""
from __future__ import annotations

import os
import re
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from common.cli.sizes import parse_image_size
from common.engine.device import DEVICE_CHOICES

from common.verdicts.results import ALLOW_PARTIAL_HELP, EXIT_ERROR, RunError, exit_code_for, verdict_line
from common.verdicts.thresholds import ERROR


def run_entry_point(main_fn: Callable[..., Any]) -> None:
    """Run an entry point and exit with the suite's exit codes; never returns.

    ``main_fn`` is a plain function or a click command (run with
    ``standalone_mode=False`` so that a ClickException exits 2, not click's 1).
    If it returns a metrics dict, its verdict line is printed (on stderr as
    ``error: ...`` for an ERROR verdict) and the exit code follows it; an int
    is used as the exit code; None means 0. Any exception becomes one line on
    stderr and exit 2 (``NIA_DEBUG=1`` adds the traceback). A warning is one
    plain ``warning: ...`` line (Python's format adds the warning's source line).
    """
    warnings.formatwarning = one_line_warning
    try:
        if isinstance(main_fn, click.Command):  # groups too (click.BaseCommand is deprecated from 8.2)
            outcome = main_fn.main(standalone_mode=False)
        else:
            outcome = main_fn()
    except SystemExit:
        raise
    except click.exceptions.Abort:
        _fail("aborted")
    except click.ClickException as exc:
        _fail(exc.format_message())
    except OSError as exc:  # a missing, unreadable or unwritable file, a full disk: name the file
        _fail(worker_error_text(exc) or os_error_text(exc), exc)
    except (RunError, ValueError) as exc:
        _fail(worker_error_text(exc) or str(exc) or type(exc).__name__, exc)
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as exc:  # noqa: BLE001 - a crash must exit 2, not Python's 1 (= FAIL)
        text = worker_error_text(exc) or str(exc)
        _fail(f"internal error: {type(exc).__name__}: {text} (NIA_DEBUG=1 shows the traceback)", exc)
    if isinstance(outcome, dict):
        if outcome.get("verdict") == ERROR:
            _fail(verdict_line(outcome))
        print(verdict_line(outcome))
        sys.exit(exit_code_for(outcome))
    sys.exit(int(outcome or 0))


def one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     line: str | None = None) -> str:
    """`warnings.formatwarning` for users: ``warning: MESSAGE`` on one line, without the file, line number,
    category and source line Python's default adds (``NIA_DEBUG=1`` keeps those)."""
    if os.environ.get("NIA_DEBUG"):
        return _python_format(message, category, filename, lineno, line)
    return f"warning: {' '.join(str(message).split())}\n"


_python_format = warnings.formatwarning


_WORKER_ERROR = re.compile(r"Caught (\w+) in [^\n]*\.\nOriginal Traceback \(most recent call last\):\n")


def worker_error_text(exc: BaseException) -> str | None:
    """The original message of an error raised in a DataLoader worker, else None.

    torch re-raises it in the main process as the same type with the worker's
    whole formatted traceback as its message ("Caught ValueError in DataLoader
    worker process 0. Original Traceback ..."): 1.5 kB on one error line. The
    original message is the traceback's last "Type: message" line (and any
    lines after it), found here by the type's name (qualified or not).
    """
    text = str(exc.args[0]) if exc.args else ""   # the message as given: str() of a KeyError quotes it
    match = _WORKER_ERROR.match(text)
    if match is None:
        return None
    lines = text.splitlines()
    final = re.compile(rf"(?:[\w.]+\.)?{re.escape(match.group(1))}(?:: |$)")
    for number in range(len(lines) - 1, 1, -1):
        if final.match(lines[number]):
            first = lines[number].partition(": ")[2]
            return "\n".join([first, *lines[number + 1:]]).strip() or match.group(1)
    return None


def os_error_text(exc: OSError) -> str:
    """``FILE: reason`` for an error the system raised about a file, else the error's own text."""
    if exc.filename is None or not exc.strerror:
        return str(exc) or type(exc).__name__
    also = f" (-> {exc.filename2})" if exc.filename2 is not None else ""
    return f"{exc.filename}{also}: {exc.strerror}"


def _fail(message: str, exc: BaseException | None = None) -> None:
    if exc is not None and os.environ.get("NIA_DEBUG"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(EXIT_ERROR)


def _stack(options: list[Callable[[Callable], Callable]]) -> Callable[[Callable], Callable]:
    """One decorator that applies `options` so that `--help` lists them in this order."""
    def decorate(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function
    return decorate


def validation_options(weights_help: str, predictions_help: str) -> Callable[[Callable], Callable]:
    """The shared click options, in the order `--help` shows them."""
    return _stack([
        click.option("--data", required=True, type=click.Path(exists=True, path_type=Path),
                     help="a prepared dataset (folder with index.parquet), a manifest .parquet "
                          "(`nia index`), or a dataset root (extracted delivery or `nia synth` output); "
                          "the last two are prepared into --work-dir first"),
        click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help=weights_help),
        click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="folder for metrics.json and per_sample.csv"),
        click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="where a manifest or dataset root is prepared  [default: OUT/prepared]"),
        click.option("--split", default="test", help="split to score"),
        click.option("--device", "device_name", type=click.Choice(DEVICE_CHOICES), default="auto",
                     help="auto takes CUDA when visible; cuda without a GPU falls back to the CPU with a warning"),
        click.option("--batch-size", type=click.IntRange(min=1), default=64, help="items per batch"),
        click.option("--workers", type=click.IntRange(min=0), default=None,
                     help="DataLoader decode processes  [default: chosen from the free cores]"),
        click.option("--predictions", type=click.Path(exists=True, path_type=Path), default=None,
                     help=predictions_help),
        allow_partial_option,
    ])


allow_partial_option = click.option("--allow-partial", is_flag=True, default=False, help=ALLOW_PARTIAL_HELP)


# The options every model's train.py shares, in four groups that keep each train.py's `--help` order
# (its own options stand between them). `None` defaults mean "the preset's, or on --resume the saved config's".

def train_command(data_help: str, presets: Iterable[str], preset_help: str) -> Callable[[Callable], click.Command]:
    """A train script's click command (defaults shown in `--help`) with its first options,
    `train_data_options`."""
    def decorate(function: Callable) -> click.Command:
        return click.command(context_settings={"show_default": True})(
            train_data_options(data_help, presets, preset_help)(function))
    return decorate


def train_data_options(data_help: str, presets: Iterable[str], preset_help: str) -> Callable[[Callable], Callable]:
    """`--data DIR` (as `data_dir`), `--out DIR` and `--preset` (as `preset_name`, default official)."""
    return _stack([
        click.option("--data", "data_dir", required=True,
                     type=click.Path(exists=True, file_okay=False, path_type=Path), help=data_help),
        click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="output directory for best.pt, last.pt, log.csv, curves.png, config.json"),
        click.option("--preset", "preset_name", type=click.Choice(sorted(presets)), default="official",
                     help=preset_help),
    ])


def input_size_option(example: str, help_text: str, *, square: bool = False) -> Callable[[Callable], Callable]:
    """`--input-size WxH` (a bare N is NxN), given to the command as `input_size`: the config overrides it
    stands for, {"input_width": W, "input_height": H}, or {"input_size": N} for a `square` input (W = H
    required), {} when not given; BadParameter naming the option and the form."""
    def as_overrides(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, int]:
        if value is None:
            return {}
        width, height = parse_image_size(value, example, "--input-size", side_alone=True)
        if not square:
            return {"input_width": width, "input_height": height}
        if width != height:
            raise click.BadParameter(f"expected a square size such as {example} (or N), got {value!r}",
                                     param_hint="--input-size")
        return {"input_size": width}
    return click.option("--input-size", default=None, metavar="WxH", callback=as_overrides, help=help_text)


def train_length_options(official_batch: int) -> Callable[[Callable], Callable]:
    """`--epochs` and `--batch-size` (the global batch)."""
    return _stack([
        click.option("--epochs", type=int, default=None, help="maximum epochs [official: 100]"),
        click.option("--batch-size", type=int, default=None,
                     help=f"global batch over all processes [official: {official_batch}]"),
    ])


def train_process_options(
        workers_help: str = "DataLoader worker processes per training process [2]") -> Callable[[Callable], Callable]:
    """`--amp/--no-amp`, `--seed`, `--workers` and `--device` (as `device_name`)."""
    return _stack([
        click.option("--amp/--no-amp", default=None, help="mixed precision on CUDA [on]"),
        click.option("--seed", type=int, default=None, help="random seed [0]"),
        click.option("--workers", type=int, default=None, help=workers_help),
        click.option("--device", "device_name", type=click.Choice(DEVICE_CHOICES), default="auto",
                     help="auto takes CUDA when visible; cuda without a GPU falls back to the CPU with a warning"),
    ])


def train_resume_options(val_split_help: str) -> Callable[[Callable], Callable]:
    """`--resume` and the `--train-split`/`--val-split` names."""
    return _stack([
        click.option("--resume", is_flag=True, help="continue from OUT/last.pt (its config; given options override)"),
        click.option("--train-split", default="train", help="split used for training"),
        click.option("--val-split", default="val", help=val_split_help),
    ])


def nia() -> None:
    """The `nia` console command: the click group under the suite's exit-code rule."""
    from common.cli import main

    run_entry_point(main)
