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
              help="Folder for report.json, report.md and report.html (created if missing; earlier report "
                   "files there are removed first).")
@click.option("--run-id", "run_ids", multiple=True,
              help="File only results written by this run (metrics.json's run_id, from $NIA_RUN_ID); "
                   "repeat for several runs. A folder from another run (stale results) is named and not filed, "
                   "the others are; exit 2.")
@click.option("--data", "data", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="the prepared dataset a result was scored on (a crop or clip folder with index.parquet, or that "
                   "file; repeat for several): the split's size, the data's skip counts and the truth are "
                   "recomputed from it. Without it, the index the result's provenance names (or RESULTS_DIR/"
                   "prepared) is used when it is at hand and unchanged; else the report says the counts are the "
                   "run's own.")
def report(results_dirs: tuple[Path, ...], out_dir: Path, run_ids: tuple[str, ...], data: tuple[Path, ...]) -> None:
    """Merge the metrics.json + per_sample.csv of RESULTS_DIR... into one audit report.

    Works with any subset of the three tests (l2cs, rit, dfer), one folder
    each. Each verdict is recomputed from the value, the skip counts and the
    suite's own thresholds, the value from per_sample.csv (whose SHA-256,
    coverage and class set are checked); the split's size, the data's skip
    counts and the truth from the data where it is at hand (--data), else the
    report says they are the run's own. A folder that disagrees with itself
    or its data is filed as FAIL with its problems listed. Prints
    one verdict line per test. Exit code: 0 when every test passed, 1 when
    any failed (or disagrees with itself), 2 when a folder cannot be read or
    has no verdict (PARTIAL, ERROR).

    \b
    Example:
        nia report build/results/l2cs build/results/rit build/results/dfer --out build/report
    """
    from common.report.merge import build_report, clear_report, load_result_dir, split_by_run, write_report
    from common.verdicts.results import RunError, verdict_line

    clear_report(out_dir)  # a report that cannot be built leaves none behind to be filed
    try:
        loaded = [load_result_dir(d) for d in results_dirs]
        filed, stale = split_by_run(loaded, run_ids) if run_ids else (loaded, [])
        if not filed:
            raise RunError("; ".join(item["reason"] for item in stale))
        report_dict = build_report(filed, stale, data)
        paths = write_report(report_dict, filed, out_dir)
    except (RunError, OSError, ValueError, KeyError) as exc:
        raise _ReportError(str(exc)) from exc
    for item in stale:
        click.echo(f"{item['test']}: not filed, no verdict: {item['reason']}")
    for entry in report_dict["tests"]:
        click.echo(verdict_line(entry))
        if not entry["data_check"]["checked"]:
            click.echo(f"note: {entry['test']}: {entry['data_check']['note']}")
        if not entry["consistent"]:
            click.echo(f"warning: {entry['test']}: {entry['source_dir']} is inconsistent, filed as FAIL: "
                       f"{'; '.join(entry['problems'])}", err=True)
    click.echo(f"report: {paths['html']} (also report.md, report.json)")
    raise SystemExit(report_dict["exit_code"])


COMMANDS: list[click.Command] = [report]
