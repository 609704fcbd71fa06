"""Weights files: ours as safetensors + JSON (no unpickler at all), other
people's pickled files through the suite's own restricted unpickler.

Our checkpoint is one safetensors file (the `.pt` name is kept for
familiarity: the bytes start with a JSON header, not a zip or a pickle).
Its tensors are the model's state_dict under `model.` and the optimizer's
per-parameter state under `optimizer.<i>.<name>`; its one metadata entry
`nia` is a JSON object: `format` (e.g. `nia-l2cs/2`) and `state` (the
config, the training progress, the optimizer's hyper-parameters and anything
else plain). One entry, because safetensors writes several in a random
order and the same training must give the same bytes. Reading it parses
that JSON and maps raw tensor bytes: nothing in the file can run code.

Pickled files (original repositories' checkpoints, torchvision weights, our
files before safetensors) are read by `common.engine.safe_load`, never by
`torch.load`: tensors and plain containers only, a TorchScript archive or a
pickle that calls a function refused without running anything from it, on
torch 1.13 and 2.x alike.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import torch

from common.atomic import atomic_path
from common.engine.safe_load import read_pickled

MODEL_PREFIX = "model."
OPTIMIZER_PREFIX = "optimizer."
METADATA_KEY = "nia"
SAFETENSORS_HEADER_LIMIT = 100 * 2**20   # a larger JSON header is not a weights file of ours


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], format_tag: str) -> None:
    """Write `state` atomically as safetensors + JSON (a kill mid-write leaves the previous file intact).

    `state["model"]` is a state_dict, `state.get("optimizer")` an optimizer
    state_dict, everything else plain JSON-able values (NaN and inf allowed).
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {k: v for k, v in state.items() if k not in ("model", "optimizer")}
    tensors = {MODEL_PREFIX + k: v.detach().cpu().contiguous() for k, v in state["model"].items()}
    if state.get("optimizer") is not None:
        scalars: dict[str, dict[str, Any]] = {}
        for param, entries in state["optimizer"]["state"].items():
            for name, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{OPTIMIZER_PREFIX}{param}.{name}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(param), {})[name] = value
        plain["optimizer_param_groups"] = state["optimizer"]["param_groups"]
        plain["optimizer_scalars"] = scalars
    # one metadata key: safetensors writes several in a random order, and the same training must give
    # the same bytes (a weights hash is part of every report)
    metadata = {METADATA_KEY: json.dumps({"format": format_tag, "state": plain}, allow_nan=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def is_safetensors(path: str | os.PathLike) -> bool:
    """True when the file starts like a safetensors file (8-byte header length, then a JSON object)."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return 2 <= size <= SAFETENSORS_HEADER_LIMIT and head[8:9] == b"{"


def read_checkpoint(path: str | os.PathLike, format_tags: tuple[str, ...]) -> dict[str, Any]:
    """Our checkpoint (any of `format_tags`) as the dict `save_checkpoint` was given, tensors on the CPU.

    Also reads our older pickled files (a dict with `format`, `model`, `json`).
    Raises FileNotFoundError, or ValueError naming the file and what it is instead.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if is_safetensors(path):
        tensors, metadata = _read_safetensors(path)
        header = _header(path, metadata)
        if header.get("format") not in format_tags:
            raise ValueError(f"{path}: a safetensors file of format {header.get('format')!r}, "
                             f"expected {' or '.join(format_tags)}")
        return _decode(tensors, header)
    obj = load_pickled_weights(path)
    if not (isinstance(obj, dict) and obj.get("format") in format_tags and "model" in obj and "json" in obj):
        raise ValueError(f"{path}: not a {' or '.join(format_tags)} checkpoint")
    return _decode_pickled(obj)


def read_our_weights(path: str | os.PathLike, format_tags: tuple[str, ...]) -> dict[str, Any] | None:
    """`read_checkpoint` when the file is one of ours (safetensors, or an older pickled one), else None."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if is_safetensors(path):
        return read_checkpoint(path, format_tags)
    obj = load_pickled_weights(path)
    if isinstance(obj, dict) and obj.get("format") in format_tags and "model" in obj and "json" in obj:
        return _decode_pickled(obj)
    return None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: damaged safetensors weights file: {exc}") from exc
    return tensors, metadata


def _header(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """The `nia` metadata entry: {"format": ..., "state": {...}}; ValueError naming the file if it is not one."""
    try:
        header = json.loads(metadata[METADATA_KEY])
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: safetensors metadata '{METADATA_KEY}' missing or not JSON ({exc}): "
                         "not a checkpoint of this suite") from exc
    if not isinstance(header, dict) or not isinstance(header.get("state"), dict):
        raise ValueError(f"{path}: safetensors metadata '{METADATA_KEY}' has no 'state' object")
    return header


def _decode(tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> dict[str, Any]:
    state = dict(header["state"])
    state["model"] = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    groups = state.pop("optimizer_param_groups", None)
    scalars = state.pop("optimizer_scalars", {})
    if groups is not None:
        per_param: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith(OPTIMIZER_PREFIX):
                param, name = key[len(OPTIMIZER_PREFIX):].split(".", 1)
                per_param.setdefault(int(param), {})[name] = value
        for param, entries in scalars.items():
            per_param.setdefault(int(param), {}).update(entries)
        state["optimizer"] = {"state": dict(sorted(per_param.items())), "param_groups": groups}
    return state


def _decode_pickled(obj: dict[str, Any]) -> dict[str, Any]:
    state = json.loads(obj["json"])
    state["model"] = obj["model"]
    groups = state.pop("optimizer_param_groups", None)
    if groups is not None:
        state["optimizer"] = {"state": obj["optimizer_state"], "param_groups": groups}
    return state


def load_pickled_weights(path: str | os.PathLike) -> Any:
    """A pickled `torch.save` file's object, tensors on the CPU: `common.engine.safe_load.read_pickled`.

    For files that are not ours (original checkpoints, torchvision weights).
    Raises FileNotFoundError for a missing file and a one-line ValueError
    naming the file for anything that is not such a file or would run code.
    """
    return read_pickled(path)


def strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` prefix that (Distributed)DataParallel adds to every key."""
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module."):]: value for key, value in state.items()}
    return state


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str) -> None:
    """`load_state_dict(strict=True)` with an error that names the file and the mismatching keys."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit the model: {str(exc).splitlines()[0]} "
                         f"{key_diff(model.state_dict(), state)}") from exc


def key_diff(own: dict[str, Any], given: dict[str, Any]) -> str:
    """'(missing [...], unexpected [...])': the first five keys each way, for error messages."""
    missing = sorted(set(own) - set(given))[:5]
    extra = sorted(set(given) - set(own))[:5]
    return f"(missing {missing}, unexpected {extra})"
