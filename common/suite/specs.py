"""Each acceptance test's image, entry point, weights file and demo inputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TestImage:
    """One acceptance test as an image.

    Attributes:
        test: the test key (l2cs, rit, dfer), as in metrics.json.
        image: the image name, that of the official delivery.
        code_dir: the test's source folder, copied into its image only.
        entry: the validation script the image runs.
        weights_file: the file name the image reads in /weights.
        demo_data: the synthetic input `make demo-data` writes, under the build folder (what /data gets).
        train_script: writes the demo weights (best.pt) with `--preset demo`.
    """

    test: str
    image: str
    code_dir: str
    entry: str
    weights_file: str
    demo_data: str
    train_script: str

    def entry_missing(self, repo: Path) -> str | None:
        """The one-line reason this test cannot run from `repo` (its entry point has not landed), else None."""
        if (repo / self.entry).is_file():
            return None
        return f"{self.entry} not found: the {self.test} entry point is not in this checkout yet"

    def demo_weights(self, build: Path) -> Path:
        return build / "weights" / f"{self.test}_demo.pt"


SUITE: dict[str, TestImage] = {
    "l2cs": TestImage("l2cs", "nia_demo_l2cs", "l2cs", "l2cs/run_valid_l2cs.py", "l2cs.pt", "crops", "l2cs/train.py"),
    "rit": TestImage("rit", "nia_demo_rit", "ritnet", "ritnet/test.py", "ritnet.pt", "crops", "ritnet/train.py"),
    "dfer": TestImage("dfer", "nia_demo_dfer", "dfer", "dfer/valid_nia.py", "dfer.pt", "synth_dfer", "dfer/train.py"),
}
