"""``nia synth``: a synthetic dataset in the exact NIA delivery format (docs/synthetic.md).

Modules, one job each: ``scene`` (who, on what device, in which state; file
names), ``dynamics`` (per-state gaze/blink/head time series), ``face`` (3D head
and eyes projected through a device profile), ``render`` (pixels), ``labels``
(NIA label dicts), ``clip`` (one clip in memory), ``writer`` (the delivery
tree, in parallel), ``zipparts`` (AI Hub-style split zips).
"""
from common.synth.clip import Frame, render_clip
from common.synth.writer import SynthConfig, SynthError, SynthSummary, build_dataset, write_sized_profile

__all__ = ["Frame", "SynthConfig", "SynthError", "SynthSummary", "build_dataset", "render_clip", "write_sized_profile"]
