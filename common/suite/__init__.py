"""The suite as auditors run it: the three test images, their inputs, their verdict table.

`specs` names each test's image, code folder, entry point and weights file
(the Makefile, docker-compose.yml and these must agree: tests/test_suite.py);
`table` turns the per-test exit codes and the merged report into the verdict
table that `make validate-all` and `nia suite run` end with; `containers`
drives Docker through its Python SDK (`nia suite run`, host side only).
"""
