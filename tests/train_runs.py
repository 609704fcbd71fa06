"""The two module fixtures every train test starts from: a small dataset and a run trained on it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest


def dataset_and_trained_run(make_data: Callable[[Path], Path], train: Callable[..., Any], *, data_name: str,
                            epochs: int = 3) -> tuple[Any, Any]:
    """Module fixtures `data_name` (`make_data` into a fresh folder) and `trained` (OUT of `train(data,
    out, epochs=epochs)` on it); a module assigns them to names of its own:
    `crops, trained = dataset_and_trained_run(...)`."""
    @pytest.fixture(scope="module", name=data_name)
    def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return make_data(tmp_path_factory.mktemp(data_name))

    @pytest.fixture(scope="module", name="trained")
    def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
        out = tmp_path_factory.mktemp(f"run{epochs}")
        train(request.getfixturevalue(data_name), out, epochs=epochs)
        return out

    return data, trained
