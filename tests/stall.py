"""Run a command that stops at a chosen point of its work, so a test can ``kill -9`` it exactly there.

    python -m tests.stall POINT REACHED -- nia ARGS...          (the nia command)
    python -m tests.stall POINT REACHED -- script.py ARGS...    (an entry script)

At POINT the process (a worker, for points inside workers) creates the file
REACHED and sleeps; the test waits for REACHED, then kills the command. The
kill itself is real: nothing of the command sees it coming. Points:

* ``prepare-copy:N``: inside the N-th member copy of ``nia prepare``, half of it written;
* ``index-parse:REL``: in the worker that parses the chunk of labels holding REL (``nia index``);
* ``crops-row:SAMPLE_ID``: in the worker that has just written the crops of that frame;
* ``clips-probe:STEM``: in the worker that has just decoded that video (``nia clips``);
* ``train-step:N``: at the N-th optimizer step (Adam or SGD) of a training script.
"""
from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path


def _stop(reached: Path) -> None:
    reached.write_text("reached")
    while True:
        time.sleep(60)


def _as_module_function(function, module, name: str) -> None:
    """Put ``function`` in place of ``module.name``, under that name: a process pool pickles it by name."""
    function.__module__, function.__qualname__ = module.__name__, name
    setattr(module, name, function)


def install(point: str, reached: Path) -> None:
    kind, _, arg = point.partition(":")
    if kind == "prepare-copy":
        import shutil

        real, calls = shutil.copyfileobj, [0]

        def copy(src, dst, length=0):
            calls[0] += 1
            if calls[0] == int(arg):
                dst.write(src.read(max(1, getattr(src, "_left", 2) // 2)))
                dst.flush()
                _stop(reached)
            return real(src, dst, length)

        shutil.copyfileobj = copy
    elif kind == "index-parse":
        import common.delivery.manifest as manifest
        import common.delivery.manifest.workers as manifest_workers

        real_parse = manifest_workers._parse_batch
        manifest.build_index.__defaults__ = (None, True, False, 4)  # chunks of 4 labels: several jobs

        def parse(job):
            if arg in job[1].split("\0"):
                _stop(reached)
            return real_parse(job)

        _as_module_function(parse, manifest_workers, "_parse_batch")
    elif kind == "crops-row":
        import common.targets.crop_job as crop_job

        real_row = crop_job._process_row

        def row(r, job, result, journal):
            records = real_row(r, job, result, journal)
            if r["sample_id"] == arg:
                _stop(reached)
            return records

        crop_job._process_row = row
    elif kind == "clips-probe":
        import common.targets.clip_probe as clip_probe

        real_probe = clip_probe.probe_videos

        def probe(items, root):
            records = real_probe(items, root)
            if any(Path(rel).stem == arg for rel, _, _ in items):
                _stop(reached)
            return records

        _as_module_function(probe, clip_probe, "probe_videos")
    elif kind == "train-step":
        import torch

        steps = [0]
        for optimizer in (torch.optim.Adam, torch.optim.SGD):  # L2CS-Net and RIT-Net: Adam; Former-DFER: SGD
            def step(self, *args, _real=optimizer.step, **kwargs):
                steps[0] += 1
                if steps[0] == int(arg):
                    _stop(reached)
                return _real(self, *args, **kwargs)

            optimizer.step = step
    else:
        raise SystemExit(f"unknown stall point {point!r}")


def main() -> None:
    point, reached, dashes, target, *args = sys.argv[1:]
    assert dashes == "--"
    install(point, Path(reached))
    if target == "nia":
        from common.cli.entry import nia

        sys.argv = ["nia", *args]
        nia()
    else:
        sys.argv = [target, *args]
        sys.path.insert(0, str(Path(target).resolve().parents[1]))
        runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    main()
