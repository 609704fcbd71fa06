"""Where the repository and the shared test fixtures are, from any folder of tests/ (the layers: unit/<package>,
models/<model>, e2e, hostile), so that no test counts how deep it lives."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
