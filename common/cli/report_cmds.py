"""`nia report`: merge test result folders into report.json / report.md / report.html."""
from __future__ import annotations

from pathlib import Path

import click


class _ReportError(click.ClickException):
    """Could not build the report: exit 2 like every 'could not run' in the suite."""

    exit_code = 2


@click.command("report")
@click.argument("results_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.json, report.md and report.html (created if missing).")
def report(results_dirs: tuple[Path, ...], out_dir: Path) -> None:
    """Merge the metrics.json + per_sample.csv of RESULTS_DIR... into one audit report.

    Works with any subset of the three tests (l2cs, rit, dfer), one folder
    each. Prints one verdict line per test. Exit code: 0 when every test
    passed, 1 when any missed its threshold, 2 when a folder cannot be read.

    \b
    Example:
        nia report build/results/l2cs build/results/rit build/results/dfer --out build/report
    """
    from common.report.merge import build_report, load_result_dir, write_report
    from common.results import RunError, exit_code_for, verdict_line

    try:
        loaded = [load_result_dir(d) for d in results_dirs]
        report_dict = build_report(loaded)
        paths = write_report(report_dict, loaded, out_dir)
    except (RunError, OSError, ValueError, KeyError) as exc:
        raise _ReportError(str(exc)) from exc
    for item in loaded:
        click.echo(verdict_line(item.result))
    for entry in report_dict["tests"]:
        if entry["consistent"] is False:
            click.echo(f"warning: {entry['test']}: per_sample.csv does not reproduce the reported value", err=True)
    click.echo(f"report: {paths['html']} (also report.md, report.json)")
    raise SystemExit(max(exit_code_for(item.result) for item in loaded))


COMMANDS: list[click.Command] = [report]
