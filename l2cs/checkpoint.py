"""Reading L2CS weights: ours through `common.engine.checkpoint` (safetensors +
JSON, no unpickler), other files through its safe unpickler
(`common.engine.safe_load`, never `torch.load`).

Three kinds of file load:

* ours, written by `l2cs/train.py` (format `nia-l2cs/2`; older pickled
  `nia-l2cs/1` files still load): read back by `read_checkpoint` as
  `{"model": state_dict, "config": dict, "epoch": int, "optimizer": ...,
  "progress": ..., "init": str}`;
* the original L2CS-Net repository's `torch.save(model.state_dict())`
  (keys `fc_yaw_gaze.*`, `fc_pitch_gaze.*`, the unused `fc_finetune.*`,
  possibly behind a `module.` prefix from DataParallel);
* torchvision ImageNet ResNet weights (`fc.*` head), backbone only.

The name trap: the reference's model returns `(fc_yaw_gaze(x),
fc_pitch_gaze(x))`, and its training, demo and drawing code unpack that as
`pitch, yaw` and draw the first one horizontally (`dx = -sin(pitchyaw[0]) ...`).
Its labels come from GazeHub files whose 2D gaze is stored as (yaw, pitch).
So the head called `fc_yaw_gaze` does predict the horizontal angle: it maps
to our `fc_yaw`, `fc_pitch_gaze` to our `fc_pitch`, and only the
reference's variable names are swapped. The flip test in
`tests/models/l2cs/test_l2cs_model.py` pins what our names mean.
"""
from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import Any

import torch

from common.engine.checkpoint import (load_pickled_weights, load_state_strict, read_our_weights,
                                      strip_module_prefix)
from common.engine.checkpoint import read_checkpoint as read_engine_checkpoint
from common.engine.loaded import LoadedModel
from common.nn.resnet import Bottleneck
from l2cs.config import BIN_PRESETS, L2CSConfig
from l2cs.model import ARCH_LAYOUTS, L2CS, build_model

FORMAT = "nia-l2cs/2"                      # safetensors + JSON
READ_FORMATS = (FORMAT, "nia-l2cs/1")      # and our pickled files from before
ORIGINAL_HEADS = {"fc_yaw_gaze.": "fc_yaw.", "fc_pitch_gaze.": "fc_pitch."}
ORIGINAL_UNUSED = "fc_finetune."


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Our checkpoint as `l2cs/train.py` saved it; ValueError naming the file if it is not one."""
    return read_engine_checkpoint(path, READ_FORMATS)


def convert_original_state_dict(state: dict[str, torch.Tensor], path: str = "<state_dict>") -> dict[str, torch.Tensor]:
    """Original L2CS-Net keys -> ours (see the module docstring for the head mapping).

    The vestigial `fc_finetune` layer (Linear(features + 3, 3)) is checked
    for its shape and dropped: nothing in the reference uses it.
    """
    state = strip_module_prefix(state)
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(ORIGINAL_UNUSED):
            if value.shape[0] != 3:
                raise ValueError(f"{path}: {key} has shape {tuple(value.shape)}, expected the reference's "
                                 "unused Linear(features + 3, 3)")
            continue
        for old, new in ORIGINAL_HEADS.items():
            if key.startswith(old):
                key = new + key[len(old):]
        converted[key] = value
    return converted


def infer_original_config(state: dict[str, torch.Tensor], path: str = "<state_dict>") -> L2CSConfig:
    """Architecture and bins of an original checkpoint from its tensor shapes.

    The reference decodes at the bins' lower edges, so `bin_anchor="edge"`.
    """
    if "fc_yaw.weight" not in state or "layer3.0.conv1.weight" not in state:
        raise ValueError(f"{path}: no fc_yaw_gaze / layer3 weights: not an L2CS-Net checkpoint")
    layer3_blocks = 1 + max(int(m.group(1)) for key in state if (m := re.match(r"layer3\.(\d+)\.", key)))
    bottleneck = "layer1.0.conv3.weight" in state
    archs = {(block is Bottleneck, depths[2]): name for name, (block, depths) in ARCH_LAYOUTS.items()}
    if (bottleneck, layer3_blocks) not in archs:
        raise ValueError(f"{path}: layer3 has {layer3_blocks} blocks (bottleneck={bottleneck}), "
                         "which matches no ResNet-18/34/50/101/152")
    num_bins = state["fc_yaw.weight"].shape[0]
    by_count = {count: name for name, (count, _, _) in BIN_PRESETS.items()}
    if num_bins not in by_count:
        raise ValueError(f"{path}: heads have {num_bins} bins, expected one of {sorted(by_count)} "
                         f"(bin presets {sorted(BIN_PRESETS)})")
    config = L2CSConfig(arch=archs[(bottleneck, layer3_blocks)], base_width=state["conv1.weight"].shape[0])
    return replace(config.with_bins(by_count[num_bins]), bin_anchor="edge").validated()


def load_model(path: str | os.PathLike) -> LoadedModel[L2CSConfig]:
    """Model (eval mode, on the CPU), its config and a provenance note from our or an original checkpoint."""
    ours = read_our_weights(path, READ_FORMATS)
    if ours is not None:
        config = L2CSConfig.from_dict(ours["config"])
        state, kind, facts = ours["model"], FORMAT, ours
    else:
        obj = load_pickled_weights(path)
        if not (isinstance(obj, dict) and "fc_yaw_gaze.weight" in strip_module_prefix(obj)):
            raise ValueError(f"{path}: neither a {FORMAT} checkpoint of ours nor an original L2CS-Net "
                             "state_dict (fc_yaw_gaze/fc_pitch_gaze keys)")
        state = convert_original_state_dict(obj, str(path))
        config, kind = infer_original_config(state, str(path)), "original-l2cs"
        facts = {"init": "original L2CS-Net training"}
    model = build_model(config)
    load_state_strict(model, state, str(path))
    model.eval()
    return LoadedModel(model, config, {"weights_format": kind, "bin_anchor": config.bin_anchor,
                                       "epoch": facts.get("epoch"), "init": facts.get("init")})


def load_imagenet_backbone(model: L2CS, path: str | os.PathLike) -> dict[str, Any]:
    """Copy torchvision ImageNet ResNet weights (a local file) into the backbone.

    The ImageNet classifier `fc.*` is dropped; the two gaze heads keep their
    random init. Any other missing or extra key is an error naming them
    (e.g. ResNet-18 weights given to a ResNet-50).
    """
    state = strip_module_prefix(load_pickled_weights(path))
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise ValueError(f"{path}: not a torchvision ResNet state_dict (no conv1.weight)")
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    heads = {k for k in own if k.startswith(("fc_pitch.", "fc_yaw."))}
    missing = sorted(set(own) - set(backbone) - heads)
    extra = sorted(set(backbone) - set(own))
    wrong_shape = sorted(k for k in backbone if k in own and own[k].shape != backbone[k].shape)
    if missing or extra or wrong_shape:
        raise ValueError(f"{path}: ImageNet weights do not fit {type(model).__name__}: missing {missing[:5]}, "
                         f"unexpected {extra[:5]}, wrong shape {wrong_shape[:5]}")
    model.load_state_dict(backbone, strict=False)
    return {"init": "imagenet", "pretrained_path": str(path)}
