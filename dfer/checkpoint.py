"""Reading Former-DFER checkpoints without running code from them.

The original repository (zengqunzhao/Former-DFER, `main_DFEW.py`) saves

    torch.save({"epoch": int, "state_dict": DataParallel(model).state_dict(),
                "best_acc": <0-d CUDA tensor>, "optimizer": SGD state_dict,
                "recorder": <__main__.RecorderMeter object>}, path)

so every weight key starts with `module.`, the storages are tagged `cuda:0`,
and the pickle names a class of the training script. A plain `torch.load`
on a CPU machine fails on the CUDA tags (and would import and run
`__main__.RecorderMeter` if it could), and `weights_only=True` refuses the
class. `read_checkpoint` therefore opens the zip archive of `torch.save`
(PyTorch >= 1.6; the same layout in 1.13 and 2.x) itself and unpickles
`data.pkl` with a restricted `pickle.Unpickler`:

* `find_class` resolves only the tensor rebuild functions of `torch._utils`
  (our own re-implementations, not torch's), `torch.*Storage` types, torch
  dtypes, `torch.Size`, `torch.device`, `collections.OrderedDict`, a few
  plain builtins and `_codecs.encode` (how protocol 2 writes bytes). Nothing
  else is imported or called.
* Any other global whose name reads like a class (an upper-case first letter,
  e.g. `__main__.RecorderMeter`), and numpy's array/dtype reconstructors
  (the recorder holds numpy arrays), become inert placeholders: instances
  that accept and drop their arguments and state. Any other function is
  refused with a ValueError naming the file: a weights file never needs one,
  and calling one is how a pickle runs code (`os.system`, `builtins.eval`).
  The rule only decides between "ignore" and "refuse"; in neither case is
  anything from the file executed.
* `persistent_load` reads each storage's bytes from the archive onto the CPU,
  whatever device it was saved from, checking its size.

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

import collections
import io
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from common.engine.checkpoint import is_safetensors
from common.engine.checkpoint import read_checkpoint as read_engine_checkpoint
from dfer.config import DFERConfig

FORMAT = "nia-dfer/1"          # ours: safetensors + JSON (common.engine.checkpoint)
READ_FORMATS = (FORMAT,)
MODULE_PREFIX = "module."
CLASSIFIER_PREFIX = "fc."
REQUIRED_KEYS = ("s_former.conv1.weight", "t_former.cls_token", "fc.weight")

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
    "UntypedStorage": torch.uint8,
}
_DTYPE_NAMES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
                "complex64", "complex128", "float", "double", "half", "long", "int", "short")
_INERT_FUNCTIONS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                    ("numpy", "dtype"), ("numpy", "ndarray")}
_BUILTINS = {"set": set, "frozenset": frozenset, "bytearray": bytearray, "complex": complex, "slice": slice,
             "list": list, "dict": dict, "tuple": tuple, "int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class SafeLoad:
    """What `read_checkpoint_details` found: the object, the classes read as placeholders, the storage devices."""

    obj: Any
    placeholders: tuple[str, ...]
    locations: tuple[str, ...]


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


class _Inert:
    """Stands for a class of the file that we do not run: takes any arguments and state, keeps nothing."""

    _origin = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Inert":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:    # SETITEMS of a dict subclass
        pass

    def append(self, item: Any) -> None:                   # APPENDS of a list subclass
        pass

    def extend(self, items: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<ignored {self._origin}>"


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: torch.dtype


def _rebuild_tensor(storage: Any, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any) -> torch.Tensor:
    """torch._utils._rebuild_tensor(_v2): a view of the storage (requires_grad, hooks, metadata dropped)."""
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError(f"tensor rebuilt from {type(storage).__name__}, expected a storage")
    return storage.as_strided(tuple(size), tuple(stride), int(offset))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    """torch._utils._rebuild_parameter(_with_state): the tensor itself."""
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: tuple, state: Any) -> Any:
    """torch._tensor._rebuild_from_type_v2: `func` is already one of ours (find_class gave it)."""
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise pickle.UnpicklingError("tensor rebuilt through an unexpected function")
    return func(*args)


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """_codecs.encode as protocol 2 uses it for bytes: str.encode(latin-1)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not a bytes literal")
    return text.encode("latin-1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("_codecs", "encode"): _codecs_encode,
}


class _Refused(pickle.UnpicklingError):
    """The pickle names a function outside the allowed set."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, torch.Tensor] = {}
        self.placeholders: set[str] = set()
        self.locations: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        if module == "torch" and name in _DTYPE_NAMES:
            return getattr(torch, name)
        if (module, name) in _INERT_FUNCTIONS or name.rsplit(".", 1)[-1][:1].isupper():
            origin = f"{module}.{name}"
            self.placeholders.add(origin)
            return type(name.rsplit(".", 1)[-1], (_Inert,), {"_origin": origin, "__module__": __name__})
        raise _Refused(f"the pickle calls {module}.{name}, which a weights file never needs "
                       "(only tensors, storages and plain containers are read)")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
        _, storage_type, key, location, numel = pid
        self.locations.add(str(location))
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, storage_type, int(numel))
        return self._storages[key]

    def _read_storage(self, key: str, storage_type: _StorageType, numel: int) -> torch.Tensor:
        name = f"{self._prefix}data/{key}"
        itemsize = torch.empty(0, dtype=storage_type.dtype).element_size()
        try:
            size = self._archive.getinfo(name).file_size   # checked before reading: no decompressing a bomb
        except KeyError:
            raise pickle.UnpicklingError(f"storage {name} is missing from the archive") from None
        if numel < 0 or size != numel * itemsize:
            raise pickle.UnpicklingError(f"storage {name} has {size} bytes, expected {numel} x {itemsize}")
        raw = self._archive.read(name)
        if numel == 0:
            return torch.empty(0, dtype=storage_type.dtype)
        return torch.frombuffer(bytearray(raw), dtype=storage_type.dtype)


def read_checkpoint_details(path: str | os.PathLike) -> SafeLoad:
    """Unpickle a `torch.save` zip archive safely (see the module docstring); ValueError naming the file if
    it is not one, is damaged, or calls a function."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _archive_prefix(archive, path)
            if f"{prefix}byteorder" in archive.namelist() and archive.read(f"{prefix}byteorder") != b"little":
                raise ValueError(f"{path}: a big-endian checkpoint, which this reader does not convert")
            unpickler = _RestrictedUnpickler(archive.read(f"{prefix}data.pkl"), archive, prefix)
            obj = unpickler.load()
    except _Refused as exc:
        raise ValueError(f"{path}: refused: {exc}") from None
    except ValueError as exc:
        if str(exc).startswith(f"{path}:"):
            raise
        raise ValueError(f"{path}: not a readable checkpoint: {_one_line(exc)}") from exc
    except (pickle.UnpicklingError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, TypeError,
            AttributeError, IndexError, KeyError, OverflowError, MemoryError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable checkpoint: {_one_line(exc)}") from exc
    return SafeLoad(obj, tuple(sorted(unpickler.placeholders)), tuple(sorted(unpickler.locations)))


def read_checkpoint(path: str | os.PathLike) -> Any:
    """The object saved in `path` (tensors on the CPU, unknown classes as inert placeholders)."""
    return read_checkpoint_details(path).obj


def _archive_prefix(archive: zipfile.ZipFile, path: Path) -> str:
    """The folder holding data.pkl ("<file stem>/" in torch 1.x, "archive/" in 2.x)."""
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise ValueError(f"{path}: a zip without exactly one <folder>/data.pkl: not a torch.save file "
                         "(PyTorch >= 1.6 format)")
    return pickles[0][: -len("data.pkl")]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


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


def load_model(path: str | os.PathLike, config: DFERConfig | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A FormerDFER (eval mode) with all the weights in `path` loaded, and a note on the file.

    Ours is rebuilt from the config it carries (`config`, when given, must
    match it); an original from `config` when given, else shaped after the
    weights (`model_kwargs_of`: the published 8 heads are assumed, since head
    count leaves no trace in the shapes). The note's `model_config` is the
    config the model was built from (a `DFERConfig` dict; sampling and input
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
        details = read_checkpoint_details(path)
        state = state_dict_of(details.obj, path)
        obj = details.obj if isinstance(details.obj, Mapping) else {}
        epoch = obj.get("epoch")
        note = {"weights_format": "original-former-dfer", "epoch": epoch if isinstance(epoch, int) else None,
                "ignored_objects": list(details.placeholders), "saved_on": list(details.locations)}
    try:
        kwargs = config.model_kwargs() if config is not None else model_kwargs_of(state)
        model = FormerDFER(**kwargs)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: weights of a Former-DFER this code cannot build: {_one_line(exc)}") from exc
    report = load_original_into(model, state, source=str(path), trainable_prefixes=())
    model.eval()
    if config is None:
        config = DFERConfig(**{k: v for k, v in kwargs.items() if k != "num_frames"},
                            frames=kwargs["num_frames"], segments=kwargs["num_frames"] // 2).validated()
    return model, {**note, "model_kwargs": kwargs, "model_config": config.to_dict(), "tensors": len(report.loaded)}


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> str:
    """Initialise `model` from `path` for training (ours, or an original Former-DFER file) and say how.

    An original 7-class checkpoint initialises everything but the classifier,
    which keeps its fresh initialisation (`load_original_into`).
    """
    if is_safetensors(path):
        state, kind = read_our_checkpoint(path)["model"], FORMAT
    else:
        state, kind = state_dict_of(read_checkpoint(path), path), "original Former-DFER"
    report = load_original_into(model, state, source=str(path))
    fresh = f"; fresh {', '.join(sorted(report.skipped))}" if report.skipped else ""
    return f"{kind}:{path}{fresh}"
