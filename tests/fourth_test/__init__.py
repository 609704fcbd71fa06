"""A throwaway fourth acceptance test (a tiny blink detector), declared by one registry entry (blink.py).

It proves the registry is the one place a test is declared: nothing outside
this folder names it (docs/architecture.md; tests/e2e/test_fourth_test.py).
"""
