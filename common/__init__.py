"""Shared code of the NIA eye-dataset validation suite: data, targets, metrics, reports."""

__version__ = "0.1.0"
