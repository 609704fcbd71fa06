"""`nia report`: merge test result folders into report.json / report.md / report.html."""
from __future__ import annotations

from pathlib import Path

import click


class _ReportError(click.ClickException):
    """Could not build the report: exit 2 like every 'could not run' in the suite."""

    exit_code = 2


@click.command("report")
@click.argument("results_dirs", nargs=-1,
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
@click.option("--anonymise-subjects", is_flag=True,
              help="Show subjects as 'subject 01', ... in the group tables (their ids otherwise).")
@click.option("--compare", "compare_paths", nargs=2, default=None,
              type=click.Path(exists=True, path_type=Path), metavar="OLD NEW",
              help="Compare two runs instead (each a result folder, a folder of them, or a merged report): "
                   "writes compare.json, compare.md and compare.html into --out.")
def report(results_dirs: tuple[Path, ...], out_dir: Path, run_ids: tuple[str, ...], data: tuple[Path, ...],
           anonymise_subjects: bool, compare_paths: tuple[Path, Path] | None) -> None:
    """Merge the metrics.json + per_sample.csv of RESULTS_DIR... into one audit report.

    Works with any subset of the registered tests (common/suite/registry.py), one folder
    each. Each verdict is recomputed from the value, the skip counts and the
    suite's own thresholds, the value from per_sample.csv (whose SHA-256,
    coverage and class set are checked); the split's size, the data's skip
    counts and the truth from the data where it is at hand (--data), else the
    report says they are the run's own. A folder that disagrees with itself
    or its data is filed as FAIL with its problems listed. Prints
    one verdict line per test. Exit code: 0 when every test passed, 1 when
    any failed (or disagrees with itself), 2 when a folder cannot be read or
    has no verdict (PARTIAL, ERROR).

    With --compare OLD NEW: what moved between two runs and why (verdicts,
    the change by group, samples only in one run, the predictions that moved
    most, flipped clips, the provenance that differs), ending in one sentence.

    \b
    Example:
        nia report build/results/l2cs build/results/rit build/results/dfer --out build/report
        nia report --compare old/results build/results --out build/compare
    """
    if compare_paths:
        if results_dirs:
            raise click.UsageError("give RESULTS_DIR... or --compare OLD NEW, not both")
        _compare(*compare_paths, out_dir, anonymise_subjects)
    if not results_dirs:
        raise click.UsageError("missing RESULTS_DIR... (or --compare OLD NEW)")
    from common.report.merge import build_report, clear_report, split_by_run, write_report
    from common.report.result_dir import load_result_dir
    from common.verdicts.results import RunError, verdict_line

    clear_report(out_dir)  # a report that cannot be built leaves none behind to be filed
    try:
        loaded = [load_result_dir(d) for d in results_dirs]
        filed, stale = split_by_run(loaded, run_ids) if run_ids else (loaded, [])
        if not filed:
            raise RunError("; ".join(item["reason"] for item in stale))
        report_dict = build_report(filed, stale, data, anonymise_subjects=anonymise_subjects)
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


def _compare(old: Path, new: Path, out_dir: Path, anonymise_subjects: bool) -> None:
    """Write compare.json / .md / .html, print the terminal view, exit 0 (a comparison is no verdict)."""
    from common.report.compare import compare, load_pair
    from common.report.compare_views import terminal_lines, write_comparison
    from common.verdicts.results import RunError

    try:
        result = compare(*load_pair(old, new, anonymise_subjects=anonymise_subjects))
        paths = write_comparison(result, out_dir)
    except (RunError, OSError, ValueError, KeyError) as exc:
        raise _ReportError(str(exc)) from exc
    for line in terminal_lines(result):
        click.echo(line)
    click.echo(f"comparison: {paths['html']} (also compare.md, compare.json)")
    raise SystemExit(0)


COMMANDS: list[click.Command] = [report]
