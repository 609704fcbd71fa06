"""Results and verdicts: `results` (metrics.json + per_sample.csv, the coverage
rule, exit codes), `thresholds` (the suite's rules), `provenance` (hashes,
versions, device), `submissions` (score-only prediction files)."""
