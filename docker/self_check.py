"""`docker run IMAGE --self-check`: what this image would validate with, in a few lines.

Prints the image and code version, torch's version with the CUDA and cuDNN it
was built with, whether a GPU is visible (and which), and the SHA-256 of the
weights the default command would use (mounted at /weights, else baked in).
Exit 0 when torch imports and the weights, if baked, are the ones the build
recorded (/opt/nia/weights/BAKED); 1 when they differ; 2 when torch does not
import. Missing weights are reported, not an error: the check is also for
images that get their weights mounted later.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

BAKED_RECORD = Path(os.environ.get("NIA_BAKED_DIR", "/opt/nia/weights")) / "BAKED"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def torch_lines() -> list[str]:
    """torch version, its CUDA/cuDNN build, and the GPUs it sees; ImportError if torch is missing."""
    import torch

    cuda = torch.version.cuda or "none (CPU-only build)"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    lines = [f"torch {torch.__version__}, built with CUDA {cuda}, cuDNN {cudnn or 'none'}"]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        lines.append(f"CUDA visible: yes, {torch.cuda.device_count()} device(s): {names}")
    else:
        lines.append("CUDA visible: no (validation runs on the CPU)")
    return lines


def baked_record() -> tuple[str, str] | None:
    """(file name, sha256) recorded at build time, or None when nothing was baked."""
    if not BAKED_RECORD.is_file():
        return None
    fields = BAKED_RECORD.read_text(encoding="utf-8").split()
    return (fields[0], fields[1]) if len(fields) == 2 else None


def weights_line(weights: str) -> tuple[str, int]:
    """The weights' line and the exit code it implies (1 when baked weights changed)."""
    if not weights:
        return (f"weights: none (mount a folder with {os.environ.get('NIA_WEIGHTS', 'the weights file')} "
                f"at /weights, or build with BAKE=1)"), 0
    path = Path(weights)
    digest = sha256_file(path)
    record = baked_record()
    if record is not None and path.parent == BAKED_RECORD.parent and path.name == record[0]:
        if digest != record[1]:
            return f"weights: {path} sha256 {digest} (baked; the build recorded {record[1]}: CHANGED)", 1
        return f"weights: {path} sha256 {digest} (baked in, as recorded at build time)", 0
    return f"weights: {path} sha256 {digest} (mounted)", 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="", help="the weights file the default command would use")
    args = parser.parse_args()
    print(f"image {os.environ.get('NIA_IMAGE', '?')}, code {os.environ.get('NIA_CODE_VERSION', '?')}, "
          f"entry point {os.environ.get('NIA_ENTRY', '?')}")
    try:
        lines = torch_lines()
    except ImportError as exc:
        print(f"error: torch does not import: {exc}", file=sys.stderr)
        return 2
    line, code = weights_line(args.weights)
    print("\n".join([*lines, line]))
    return code


if __name__ == "__main__":
    sys.exit(main())
