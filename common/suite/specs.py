"""Each acceptance test's image, entry point, weights file and demo inputs: a view of the registry.

``SUITE`` is ``common.suite.registry.REGISTRY`` (key -> AcceptanceTest), kept
under its older name; ``TestImage`` is ``AcceptanceTest``.
"""
from __future__ import annotations

from common.suite.registry import REGISTRY, AcceptanceTest

TestImage = AcceptanceTest
SUITE: dict[str, AcceptanceTest] = REGISTRY
