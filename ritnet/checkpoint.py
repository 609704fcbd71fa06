"""Loading RIT-Net weights without unpickling arbitrary objects, and running
the original OpenEDS model on NIA crops.

Two kinds of file load (`load_model`):

* ours, written by `ritnet/train.py` through the shared engine
  (`common.engine.checkpoint`: safetensors + JSON, format `nia-rit/1`; no
  unpickler at all): the state_dict under `model.`, the `RITConfig` and the
  training progress in the JSON. Older pickled files of ours (a dict with
  `format`, `model`, `json`) still load.
* the original repository's `torch.save(model.state_dict())`, e.g. its
  shipped `best_model.pkl`: a 4-class OpenEDS model (background, sclera,
  iris, pupil), 109 entries, keys `down_block1.conv1.weight` ...
  `out_conv1.bias`, possibly behind a `module.` prefix (DataParallel), read
  by the suite's safe unpickler (`common.engine.safe_load`; zip or pre-1.6
  stream). Width, input channels and class count
  come from the tensor shapes.
Both load into `DenseNet2D` with `strict=True`.

Scoring the original model on NIA data needs two documented choices:

* Classes (`to_nia_classes`): OpenEDS -> NIA by 0 background -> 0,
  1 sclera -> 1 eye region, 2 iris -> 2 iris, 3 pupil -> 2 iris (the NIA
  iris class includes the pupil; docs/targets.md).
* Framing (`openeds_framing`, `frame_crop`, `unframe_scores`): the model
  was trained on OpenEDS frames, 400 wide x 640 high (the reference's
  arrays are 640 x 400, rows x columns), in which one eye spans the whole
  width (in the 40 test predictions shipped with the reference the eye
  classes span 293-400 columns, median 396, around row 324). At the 160x96
  crop size it sees an eye 4x too small. So a crop is scaled until its
  eyelid box (crop width / (1 + 2 margin) for the width-limited boxes of
  open eyes) spans `eye_fill` x 400 columns, centred in the frame, the rows
  above and below filled by repeating the crop's edge rows; the preprocessing
  runs on that frame, as it ran on OpenEDS frames. The class probabilities are
  mapped back by area averaging onto the crop's pixels (crop pixels outside
  the frame count as background), then the arg-max is taken.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from common.engine.checkpoint import load_pickled_weights as load_checkpoint_safely
from common.engine.checkpoint import read_our_weights, strip_module_prefix
from common.engine.loaded import LoadedModel
from ritnet.config import RITConfig
from ritnet.model import DenseNet2D
from ritnet.preprocess import preprocess

FORMAT = "nia-rit/1"          # safetensors + JSON, written by ritnet/train.py
READ_FORMATS = (FORMAT,)
OPENEDS_CLASSES = ("background", "sclera", "iris", "pupil")
OPENEDS_TO_NIA = (0, 1, 2, 2)  # index = OpenEDS class, value = NIA class
OPENEDS_FRAME = (400, 640)     # width, height of an OpenEDS eye image
FIRST_KEY, LAST_KEY = "down_block1.conv1.weight", "out_conv1.weight"


def infer_architecture(state: dict[str, torch.Tensor], path: str = "<state_dict>") -> dict[str, int]:
    """`DenseNet2D` keyword arguments (in_channels, num_classes, channels) from the tensor shapes."""
    if FIRST_KEY not in state or LAST_KEY not in state:
        raise ValueError(f"{path}: not a RITnet DenseNet2D state_dict (keys {FIRST_KEY} and {LAST_KEY} expected)")
    channels, in_channels = state[FIRST_KEY].shape[:2]
    num_classes, out_width = state[LAST_KEY].shape[:2]
    if out_width != channels:
        raise ValueError(f"{path}: {LAST_KEY} has {out_width} input channels but the blocks are {channels} wide")
    return {"in_channels": int(in_channels), "num_classes": int(num_classes), "channels": int(channels)}


def model_from_state(state: dict[str, torch.Tensor], path: str = "<state_dict>") -> DenseNet2D:
    """A DenseNet2D of the state's shape with the state loaded strictly, in eval mode."""
    state = strip_module_prefix(dict(state))
    model = DenseNet2D(**infer_architecture(state, path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise ValueError(f"{path}: weights do not fit DenseNet2D: {first_line}") from exc
    return model.eval()


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedModel[RITConfig]:
    """Our checkpoint or an original RITnet state_dict (module docstring), as an eval-mode model."""
    ours = read_our_weights(path, READ_FORMATS)
    if ours is not None:
        if not isinstance(ours.get("config"), dict):
            raise ValueError(f"{path}: a {FORMAT} checkpoint without its config")
        config = RITConfig.from_dict(ours["config"])
        model = model_from_state(ours["model"], str(path))
        if (model.channels, model.num_classes) != (config.channels, config.num_classes):
            raise ValueError(f"{path}: weights of width {model.channels} and {model.num_classes} classes, but its "
                             f"config says {config.channels} and {config.num_classes}")
        facts = {"weights_format": FORMAT, "epoch": ours.get("epoch"), "init": ours.get("init")}
        return LoadedModel(model.to(map_location), config, facts)
    obj = load_checkpoint_safely(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state_dict or one of our {FORMAT} checkpoints, "
                         f"got {type(obj).__name__}")
    model = model_from_state(obj, str(path))
    facts = {"weights_format": "original-ritnet", "init": "original RITnet training"}
    return LoadedModel(model, None, facts)


def to_nia_classes(openeds_map: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """OpenEDS class map (0..3) -> NIA class map (0..2) by OPENEDS_TO_NIA; same type, shape and device."""
    if isinstance(openeds_map, torch.Tensor):
        table = torch.tensor(OPENEDS_TO_NIA, dtype=openeds_map.dtype, device=openeds_map.device)
        return table[openeds_map.long()]
    values = np.asarray(openeds_map)
    if values.size and (values.min() < 0 or values.max() >= len(OPENEDS_TO_NIA)):
        raise ValueError(f"to_nia_classes: OpenEDS classes 0..3 expected, got {values.min()}..{values.max()}")
    return np.asarray(OPENEDS_TO_NIA, dtype=values.dtype)[values]


@dataclass(frozen=True)
class Framing:
    """Where a crop sits in the OpenEDS frame: resized to resized_width x resized_height, its top-left
    at (left, top) in frame pixels (negative = cut off)."""

    crop_width: int
    crop_height: int
    resized_width: int
    resized_height: int
    left: int
    top: int
    frame_width: int = OPENEDS_FRAME[0]
    frame_height: int = OPENEDS_FRAME[1]


def openeds_framing(crop_width: int, crop_height: int, *, margin: float = 0.25, eye_fill: float = 1.0) -> Framing:
    """The framing that makes a crop's eyelid box span `eye_fill` of the 400-pixel frame width.

    `margin` is the crop dataset's (`nia crops --margin`, index metadata
    `nia.crop_options`): the eyelid box is crop_width / (1 + 2 margin) wide.
    """
    if crop_width < 1 or crop_height < 1 or margin < 0 or eye_fill <= 0:
        raise ValueError(f"openeds_framing: crop {crop_width}x{crop_height}, margin {margin}, eye_fill {eye_fill}; "
                         "expected a positive size, margin >= 0 and eye_fill > 0")
    frame_width, frame_height = OPENEDS_FRAME
    scale = eye_fill * frame_width * (1.0 + 2.0 * margin) / crop_width
    resized_width, resized_height = max(1, round(crop_width * scale)), max(1, round(crop_height * scale))
    return Framing(crop_width, crop_height, resized_width, resized_height,
                   (frame_width - resized_width) // 2, (frame_height - resized_height) // 2)


def frame_crop(image: np.ndarray, framing: Framing, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """A crop (HxW, any dtype) placed in the frame (frame_height x frame_width), edge rows/columns repeated."""
    if image.shape[:2] != (framing.crop_height, framing.crop_width):
        raise ValueError(f"frame_crop: crop {image.shape[1]}x{image.shape[0]} does not match the framing's "
                         f"{framing.crop_width}x{framing.crop_height}")
    resized = cv2.resize(image, (framing.resized_width, framing.resized_height), interpolation=interpolation)
    pad_top, pad_left = max(0, framing.top), max(0, framing.left)
    pad_bottom = max(0, framing.frame_height - framing.top - framing.resized_height)
    pad_right = max(0, framing.frame_width - framing.left - framing.resized_width)
    padded = np.pad(resized, ((pad_top, pad_bottom), (pad_left, pad_right)), mode="edge")
    row, col = max(0, -framing.top), max(0, -framing.left)
    return padded[row:row + framing.frame_height, col:col + framing.frame_width]


def unframe_scores(scores: torch.Tensor, framing: Framing) -> torch.Tensor:
    """Frame class scores (N, C, frame_height, frame_width) -> class probabilities on the crop (N, C, h, w).

    Softmax in the frame; the part of the resized crop outside the frame is
    background (class 0) with probability 1; area averaging down to the crop.
    """
    n, c = scores.shape[:2]
    if scores.shape[2:] != (framing.frame_height, framing.frame_width):
        raise ValueError(f"unframe_scores: scores {tuple(scores.shape)}, expected (N, C, {framing.frame_height}, "
                         f"{framing.frame_width})")
    probs = torch.softmax(scores.float(), dim=1)
    canvas = probs.new_zeros(n, c, framing.resized_height, framing.resized_width)
    canvas[:, 0] = 1.0
    y0, x0 = max(0, framing.top), max(0, framing.left)
    y1 = min(framing.frame_height, framing.top + framing.resized_height)
    x1 = min(framing.frame_width, framing.left + framing.resized_width)
    canvas[:, :, y0 - framing.top:y1 - framing.top, x0 - framing.left:x1 - framing.left] = probs[:, :, y0:y1, x0:x1]
    return F.interpolate(canvas, size=(framing.crop_height, framing.crop_width), mode="area")


@torch.no_grad()
def predict_original(model: DenseNet2D, grey_crops: Sequence[np.ndarray], framing: Framing,
                     device: torch.device | str = "cpu") -> np.ndarray:
    """NIA class maps (N, h, w) uint8 of grey uint8 crops, by a 4-class OpenEDS model at its own framing."""
    if model.num_classes != len(OPENEDS_CLASSES):
        raise ValueError(f"predict_original: a {len(OPENEDS_CLASSES)}-class OpenEDS model expected, "
                         f"got {model.num_classes} classes")
    frames = np.stack([preprocess(frame_crop(crop, framing)) for crop in grey_crops])
    scores = model(torch.from_numpy(frames)[:, None].to(device))
    probs = unframe_scores(scores, framing)
    return to_nia_classes(probs.argmax(dim=1).to(torch.uint8)).cpu().numpy()
