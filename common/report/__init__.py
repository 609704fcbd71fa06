"""`nia report`: merge result folders into report.json, report.md and a self-contained report.html.

- merge: read each folder's metrics.json + per_sample.csv, recompute the headline
  from the per-sample file as a consistency check, build the report dict
- plots: matplotlib (Agg) figures as PNG bytes
- markdown / html: render the report dict
"""
from common.report.merge import build_report, write_report
from common.report.result_dir import ResultDir, load_result_dir

__all__ = ["ResultDir", "build_report", "load_result_dir", "write_report"]
