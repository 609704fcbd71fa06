"""Reading Former-DFER checkpoints without running code from them.

The original repository (zengqunzhao/Former-DFER, `main_DFEW.py`) saves

    torch.save({"epoch": int, "state_dict": DataParallel(model).state_dict(),
                "best_acc": <0-d CUDA tensor>, "optimizer": SGD state_dict,
                "recorder": <__main__.RecorderMeter object>}, path)

so every weight key starts with `module.`, the storages are tagged `cuda:0`,
and the pickle names a class of the training script. A plain `torch.load`
on a CPU machine fails on the CUDA tags (and would import and run
`__main__.RecorderMeter` if it could), and `weights_only=True` refuses the
class. Such files are read by the suite's one safe reader,
`common.engine.safe_load` (storages onto the CPU, the recorder an inert
placeholder, any function call refused, nothing from the file executed).

Our own checkpoints (`dfer/train.py`, format `nia-dfer/1`) are safetensors +
JSON written by `common.engine.checkpoint`: no pickle at all, the config
inside. `load_model` and `load_pretrained` tell the two apart by the file's
first bytes.

`state_dict_of` finds the weights (original `state_dict`, our `model`, or a
bare state_dict) and removes the `module.` prefix. `load_original_into` loads
them into a model and reports what it loaded and skipped: a 7-class original
initialises everything but the classifier `fc`, which keeps its fresh
initialisation and is then trained. Broken or foreign files raise a
one-line ValueError naming the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from common.engine.checkpoint import is_safetensors
from common.engine.checkpoint import read_checkpoint as read_engine_checkpoint
from common.engine.loaded import LoadedModel
from common.engine.safe_load import one_line, read_pickled, read_pickled_details
from dfer.config import DFERConfig

FORMAT = "nia-dfer/1"          # ours: safetensors + JSON (common.engine.checkpoint)
READ_FORMATS = (FORMAT,)
MODULE_PREFIX = "module."
CLASSIFIER_PREFIX = "fc."
REQUIRED_KEYS = ("s_former.conv1.weight", "t_former.cls_token", "fc.weight")


@dataclass(frozen=True)
class LoadReport:
    """Which model keys `load_original_into` filled from the file and which it left as they were, and why."""

    source: str
    loaded: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.skipped:
            return f"{self.source}: loaded all {len(self.loaded)} tensors"
        reasons = "; ".join(f"{key}: {why}" for key, why in self.skipped.items())
        return f"{self.source}: loaded {len(self.loaded)} tensors, kept {len(self.skipped)} as initialised ({reasons})"


def state_dict_of(obj: Any, path: str | os.PathLike = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The Former-DFER weights inside a checkpoint object, `module.` prefix removed.

    Accepts the original format (a dict with `state_dict`), ours (a dict with
    `model`), or a bare state_dict. ValueError naming the file otherwise.
    """
    state = obj
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                state = obj[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"{path}: no state_dict (expected a dict with 'state_dict' or 'model', or a state_dict)")
    if all(isinstance(k, str) and k.startswith(MODULE_PREFIX) for k in state):
        state = {k[len(MODULE_PREFIX):]: v for k, v in state.items()}
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: state_dict entries that are not named tensors: {bad[:3]}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"{path}: not a Former-DFER checkpoint (no {', '.join(missing)}; "
                         f"first keys {list(state)[:3]})")
    return dict(state)


def load_original_into(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "<state_dict>",
                       trainable_prefixes: tuple[str, ...] = (CLASSIFIER_PREFIX,)) -> LoadReport:
    """Copy `state` into `model`; only keys under `trainable_prefixes` (the classifier) may be left out.

    A classifier of another shape (7 DFEW classes for our 5 states) or one
    absent from the file keeps the model's initialisation and is reported as
    skipped. Any other missing, unexpected or mis-shaped key is a ValueError
    naming `source`: a backbone loaded in part would train on silently.
    """
    own = model.state_dict()
    skipped: dict[str, str] = {}
    usable: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for key, target in own.items():
        given = state.get(key)
        if given is None:
            reason = "not in the file"
        elif given.shape != target.shape:
            reason = f"shape {tuple(given.shape)} in the file, {tuple(target.shape)} in the model"
        else:
            usable[key] = given
            continue
        if key.startswith(trainable_prefixes):
            skipped[key] = reason
        else:
            problems.append(f"{key}: {reason}")
    problems += [f"unexpected {key}" for key in state if key not in own]
    if problems:
        raise ValueError(f"{source}: weights do not fit {type(model).__name__}: {'; '.join(problems[:5])}"
                         + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
    model.load_state_dict(usable, strict=False)
    return LoadReport(source, tuple(usable), skipped)


def model_kwargs_of(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """FormerDFER keyword arguments that fit a state_dict's shapes (heads are not visible in the weights:
    the published 8 is assumed)."""
    tokens = state["s_former.pos_embedding"].shape[1]
    side = round(tokens ** 0.5)
    return {"num_classes": state["fc.weight"].shape[0], "base_width": state["s_former.conv1.weight"].shape[0],
            "num_frames": state["t_former.pos_embedding"].shape[1] - 1, "input_size": side * 16,
            "s_depth": _depth(state, "s_former."), "t_depth": _depth(state, "t_former.")}


def _depth(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    marker = f"{prefix}spatial_transformer.layers."
    return 1 + max(int(k[len(marker):].split(".", 1)[0]) for k in state if k.startswith(marker))


def read_our_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Our checkpoint as `dfer/train.py` saved it (`model`, `config`, `epoch`, `progress`, ...)."""
    return read_engine_checkpoint(path, READ_FORMATS)


def load_model(path: str | os.PathLike, config: DFERConfig | None = None) -> LoadedModel[DFERConfig]:
    """A FormerDFER (eval mode) with all the weights in `path` loaded, its config and a note on the file.

    Ours is rebuilt from the config it carries (`config`, when given, must
    match it); an original from `config` when given, else shaped after the
    weights (`model_kwargs_of`: the published 8 heads are assumed, since head
    count leaves no trace in the shapes). `config` (and the note's
    `model_config`) is the config the model was built from (a `DFERConfig`, a dict in the note; sampling and input
    size come from it). To start training from a 7-class original, build the
    5-class model and call `load_pretrained` instead.
    """
    from dfer.model import FormerDFER  # here, so that reading files does not import the model

    if is_safetensors(path):
        saved = read_our_checkpoint(path)
        config = config if config is not None else DFERConfig.from_dict(saved["config"])
        state, note = saved["model"], {"weights_format": FORMAT, "epoch": saved.get("epoch"),
                                       "init": saved.get("init")}
    else:
        details = read_pickled_details(path)
        state = state_dict_of(details.obj, path)
        obj = details.obj if isinstance(details.obj, Mapping) else {}
        epoch = obj.get("epoch")
        note = {"weights_format": "original-former-dfer", "epoch": epoch if isinstance(epoch, int) else None,
                "ignored_objects": list(details.placeholders), "saved_on": list(details.locations)}
    try:
        kwargs = config.model_kwargs() if config is not None else model_kwargs_of(state)
        model = FormerDFER(**kwargs)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: weights of a Former-DFER this code cannot build: {one_line(exc)}") from exc
    report = load_original_into(model, state, source=str(path), trainable_prefixes=())
    model.eval()
    if config is None:
        config = DFERConfig(**{k: v for k, v in kwargs.items() if k != "num_frames"},
                            frames=kwargs["num_frames"], segments=kwargs["num_frames"] // 2).validated()
    return LoadedModel(model, config, {**note, "model_kwargs": kwargs, "model_config": config.to_dict(),
                                       "tensors": len(report.loaded)})


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> str:
    """Initialise `model` from `path` for training (ours, or an original Former-DFER file) and say how.

    An original 7-class checkpoint initialises everything but the classifier,
    which keeps its fresh initialisation (`load_original_into`).
    """
    if is_safetensors(path):
        state, kind = read_our_checkpoint(path)["model"], FORMAT
    else:
        state, kind = state_dict_of(read_pickled(path), path), "original Former-DFER"
    report = load_original_into(model, state, source=str(path))
    fresh = f"; fresh {', '.join(sorted(report.skipped))}" if report.skipped else ""
    return f"{kind}:{path}{fresh}"
