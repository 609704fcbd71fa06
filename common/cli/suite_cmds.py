"""`nia suite`: the containerised validations from Python (Docker SDK), and the verdict table.

`nia suite run` is `make validate-all` for auditors who prefer Python: it
loads the images from `make save`'s tars (`--images DIR`, SHA-256 checked) or
builds them (`--build`), or uses the ones present; runs each test's container
with its log streamed; reports a container that died with its exit code and
last log lines; merges the report and prints the verdict table. `nia suite
table` prints the table of a `make validate-all` run. The Docker SDK is
imported inside the commands: the images never need it.
"""
from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

import click

from common.suite.registry import KEYS
from common.suite.specs import SUITE

TEST_LIST = " ".join(KEYS)  # e.g. 'l2cs rit dfer', as make passes --tests

class _SuiteError(click.ClickException):
    """Could not run the suite at all: exit 2, as every 'could not run'."""

    exit_code = 2


def _tests_option(function):
    return click.option("--tests", "tests", multiple=True, default=lambda: list(SUITE), show_default=TEST_LIST,
                        help=f"tests to run, in this order ('{TEST_LIST}' or repeated)")(function)


def _split_tests(tests: tuple[str, ...]) -> list[str]:
    """--tests given once as a space-separated list (as make passes it) or repeated."""
    names = [name for item in tests for name in item.split()]
    unknown = [name for name in names if name not in SUITE]
    if unknown:
        raise click.BadParameter(f"unknown test {', '.join(unknown)}; expected {', '.join(SUITE)}", param_hint="--tests")
    return names


@click.group("suite")
def suite() -> None:
    """The acceptance tests (common/suite/registry.py) as containers: run them, print their verdict table."""


@suite.command("table")
@click.argument("results_root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_tests_option
def table(results_root: Path, tests: tuple[str, ...]) -> None:
    """Print the verdict table of a `make validate-all` run in RESULTS_ROOT; exit 0 all PASS, 1 a FAIL, 2 no verdict.

    Reads RESULTS_ROOT/report/report.json (the merged report; each verdict is
    checked against its value and the suite's threshold, and against
    RESULTS_ROOT/TEST where that folder is at hand: an entry that disagrees is
    shown without a verdict) and, for each test without a result,
    RESULTS_ROOT/.suite/TEST.exit and TEST.stderr (why it could not run).

    \b
    Example:
        nia suite table build/results --tests "l2cs rit dfer"
    """
    from common.suite.table import check_report, read_outcomes, read_report, verdict_table

    names = _split_tests(tests)
    report_dir = results_root / "report"
    report = read_report(report_dir)
    doubts = check_report(report, results_root) if report is not None else {}
    lines, code = verdict_table(names, read_outcomes(results_root / ".suite", names), report, doubts)
    click.echo("\n".join(lines))
    if (report_dir / "report.html").is_file():
        click.echo(f"report: {report_dir / 'report.html'} (also report.md, report.json)")
    raise SystemExit(code)


@suite.command("run")
@_tests_option
@click.option("--images", "images_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="load the images from this folder first (nia_demo_*.tar + SHA256SUMS of `make save`)")
@click.option("--build", "build_images", is_flag=True, help="build the images first (needs `make wheels` and the base)")
@click.option("--base-image", default="nia-base:bookworm", show_default=True, help="base image for --build")
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=None,
              help="the data every test reads (a dataset root works for all three)  "
                   "[default: the demo data under --build-dir: crops, or clips for dfer]")
@click.option("--weights-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help=f"folder with {', '.join(spec.weights_file for spec in SUITE.values())}  [default: the demo weights]")
@click.option("--weights", "weights_files", multiple=True, metavar="TEST=FILE",
              help="one test's weights file (repeat); wins over --weights-dir")
@click.option("--results", "results_root", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build/results"), show_default=True,
              help="RESULTS/<test> for each test, RESULTS/report for the merged report")
@click.option("--build-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("build"),
              show_default=True, help="where `make demo-data demo-weights` wrote the demo inputs")
@click.option("--gpus", type=click.Choice(["auto", "all", "none"]), default="auto", show_default=True,
              help="auto passes the GPUs where nvidia-smi works (docker run --gpus all)")
@click.option("--tail", type=click.IntRange(min=1), default=20, show_default=True,
              help="log lines kept to report a container that died")
def run(tests: tuple[str, ...], images_dir: Path | None, build_images: bool, base_image: str, data: Path | None,
        weights_dir: Path | None, weights_files: tuple[str, ...], results_root: Path, build_dir: Path, gpus: str,
        tail: int) -> None:
    """Run the containerised validations, stream their logs, merge one report, print the verdict table.

    Never stops at the first test that fails or cannot run; exit 0 when every
    test passed, 1 when one failed, 2 when one has no verdict.

    \b
    Example:
        nia suite run --images /media/usb/images --data /nia/root --weights-dir /nia/weights
        nia suite run --tests l2cs          # the demo inputs of `make demo-data demo-weights`
    """
    from common.suite import containers
    from common.suite.table import Outcome, verdict_table

    if images_dir is not None and build_images:
        raise click.UsageError("--images and --build both say where the images come from; give one")
    names = _split_tests(tests)
    specs = [SUITE[name] for name in names]
    explicit = _parse_weights(weights_files)
    repo = Path.cwd()
    try:
        client = containers.connect()
        if images_dir is not None:
            containers.load_images(client, images_dir, specs, click.echo)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        raise _SuiteError(str(exc)) from exc
    run_id = os.environ.get("NIA_RUN_ID") or (datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-")
                                              + secrets.token_hex(4))
    device_requests = containers.gpu_requests(gpus)
    outcomes: dict[str, Outcome] = {}
    for spec in specs:
        click.echo(f"== {spec.test}: {spec.image}")
        results = results_root / spec.test
        try:
            _clear_earlier_run(results)
            if build_images:
                missing = spec.entry_missing(repo)
                if missing:
                    raise RuntimeError(missing)
                containers.build_image(client, spec, repo, base_image, _code_version(repo), click.echo)
            _require_image(client, spec)
            test_data = data or build_dir / spec.demo_data
            test_weights = explicit.get(spec.test) or (weights_dir / spec.weights_file if weights_dir
                                                       else spec.demo_weights(build_dir))
            for path, what in ((test_data, "data"), (test_weights, "weights")):
                if not path.exists():
                    raise FileNotFoundError(f"{path}: no {spec.test} {what} (make demo-data demo-weights, "
                                            f"or --data / --weights-dir)")
            ran = containers.run_validation(client, spec, data=test_data, weights=test_weights, results=results,
                                            run_id=run_id, device_requests=device_requests, extra_args=[],
                                            echo=click.echo, tail=tail)
        except (RuntimeError, OSError, ValueError) as exc:
            click.echo(f"error: {spec.test}: {exc}", err=True)
            outcomes[spec.test] = Outcome(spec.test, 2, str(exc))
            continue
        if not (results / "metrics.json").is_file():
            click.echo(f"error: {spec.test}: {ran.reason()}", err=True)
        outcomes[spec.test] = Outcome(spec.test, ran.exit_code, ran.reason() if ran.exit_code else "")
    report = _merge_report(results_root, names, run_id)
    lines, code = verdict_table(names, outcomes, report)
    click.echo("\n".join(lines))
    if report is not None:
        click.echo(f"report: {results_root / 'report' / 'report.html'} (also report.md, report.json)")
    raise SystemExit(code)


def _parse_weights(items: tuple[str, ...]) -> dict[str, Path]:
    weights = {}
    for item in items:
        test, sep, file = item.partition("=")
        if not sep or test not in SUITE or not file:
            raise click.BadParameter(f"{item!r}: expected TEST=FILE with TEST in {', '.join(SUITE)}",
                                     param_hint="--weights")
        weights[test] = Path(file)
    return weights


def _require_image(client, spec) -> None:
    try:
        client.images.get(spec.image)
    except Exception as exc:  # noqa: BLE001 - docker.errors.ImageNotFound, without importing docker here
        raise RuntimeError(f"image {spec.image} not found: build it with make build-{spec.test} (or --build) or "
                           f"load it with make load (or --images DIR, make save's tars)") from exc


def _code_version(repo: Path) -> str:
    import subprocess

    done = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _clear_earlier_run(results: Path) -> None:
    """Remove an earlier run's results, overlays and report from RESULTS/<test>; a file that cannot be removed
    (a read-only mount) stops this test only, with one line naming it."""
    import shutil

    from common.verdicts.results import clear_results

    try:
        clear_results(results)
        if (results / "report").is_dir():
            shutil.rmtree(results / "report")
    except OSError as exc:
        raise RuntimeError(f"cannot remove the earlier run's results in {results} ({exc.strerror}: "
                           f"{exc.filename}): not run, its stale result would be filed as this run's") from exc


def _merge_report(results_root: Path, names: list[str], run_id: str) -> dict | None:
    """The merged report of this run's results (RESULTS/report), or None when no test wrote one; a folder
    that is stale or cannot be read is named in the report's `not_filed` and the others are filed."""
    from common.report.merge import build_report, clear_report, not_filed, split_by_run, write_report
    from common.report.result_dir import load_result_dir
    from common.verdicts.results import RunError

    out = results_root / "report"
    clear_report(out)
    loaded, unreadable = [], []
    for name in names:
        if (results_root / name / "metrics.json").is_file():
            try:
                loaded.append(load_result_dir(results_root / name))
            except (RunError, OSError, ValueError) as exc:
                unreadable.append(not_filed(name, results_root / name, str(exc)))
    filed, stale = split_by_run(loaded, (run_id,))
    if not filed:
        return None
    report = build_report(filed, stale + unreadable)
    write_report(report, filed, out)
    return report


COMMANDS: list[click.Command] = [suite]
