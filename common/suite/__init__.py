"""The suite as auditors run it: the test images, their inputs, their verdict table.

`registry` declares each acceptance test once (image, code folder, entry point,
weights file, metric, report hooks; `specs` is its older view; the Makefile,
docker-compose.yml and the others are checked against it: tests/unit/suite/test_registry.py);
`table` turns the per-test exit codes and the merged report into the verdict
table that `make validate-all` and `nia suite run` end with; `containers`
drives Docker through its Python SDK (`nia suite run`, host side only).
"""
