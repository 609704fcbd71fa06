"""Reading pickled weights files (other people's `torch.save` files) without running anything from them.

Used by all three tests for every weights file that is not one of our
safetensors checkpoints: original repositories' files (L2CS-Net, RIT-Net's
`best_model.pkl`, Former-DFER's `model_best.pth`), torchvision weights and
our own pickled files from before safetensors. `torch.load` is never called:
on torch 1.13 its `weights_only=True` hands a TorchScript archive to
`torch.jit.load`, which runs the archive's own `__setstate__` code, and its
restricted unpickler has public bypasses (CVE-2025-32434, fixed in 2.6).

`read_pickled_details` opens the file itself:

* a zip archive (`torch.save` since PyTorch 1.6; "<stem>/" in 1.x,
  "archive/" in 2.x) is read record by record. One that holds TorchScript
  (`constants.pkl` or a `code/` folder) is refused before anything in it is
  read: a weights file is tensors, never code.
* the legacy stream (before 1.6, e.g. RIT-Net's shipped `best_model.pkl`):
  magic number, protocol version and system info pickles, the object pickle,
  the storage keys, then each storage's element count and bytes.

Each pickle goes through a restricted `pickle.Unpickler`:

* `find_class` resolves only the tensor rebuild functions of `torch._utils`
  (our own re-implementations, not torch's), `torch.*Storage` types, torch
  dtypes, `torch.Size`, `torch.device`, `collections.OrderedDict`, a few
  plain builtins and `_codecs.encode` (how protocol 2 writes bytes). Nothing
  else is imported or called.
* Any other global whose name reads like a class (an upper-case first letter,
  e.g. Former-DFER's `__main__.RecorderMeter`), and numpy's array/dtype
  reconstructors, become inert placeholders: instances that accept and drop
  their arguments and state. Any other function is refused with a ValueError
  naming the file: a weights file never needs one, and calling one is how a
  pickle runs code (`os.system`, `builtins.eval`). The rule only decides
  between "ignore" and "refuse"; in neither case is anything from the file
  executed.
* `persistent_load` gives each storage as a CPU tensor, whatever device it
  was saved from (the device is reported), its size checked against the
  file before anything is allocated.

Broken or foreign files raise a one-line ValueError naming the file.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

import torch

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C     # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001                    # torch.serialization.PROTOCOL_VERSION
UNREADABLE = "not a loadable weights file"

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
    """What `read_pickled_details` found: the object, the classes read as placeholders, the storage devices."""

    obj: Any
    placeholders: tuple[str, ...]
    locations: tuple[str, ...]


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

    @property
    def itemsize(self) -> int:
        return torch.empty(0, dtype=self.dtype).element_size()


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
    """The file holds something that runs code (a function outside the allowed set, TorchScript)."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and tensors; `storage` turns a persistent id into a CPU tensor."""

    def __init__(self, stream: IO[bytes], storage: Callable[[tuple], torch.Tensor]) -> None:
        super().__init__(stream)
        self._storage = storage
        self.placeholders: set[str] = set()

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
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise _Refused(f"unexpected persistent id {str(pid)[:80]} (only storages are read)")
        return self._storage(pid)


class _Storages:
    """The storages of one file, keyed as in its pickle; where each was saved (`locations`)."""

    def __init__(self) -> None:
        self.by_key: dict[str, torch.Tensor] = {}
        self.types: dict[str, _StorageType] = {}
        self.locations: set[str] = set()

    def parse(self, pid: tuple, length: int) -> tuple[_StorageType, str, int]:
        if not (len(pid) == length and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and isinstance(pid[4], int) and pid[4] >= 0):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
        self.locations.add(str(pid[3]))
        return pid[1], pid[2], pid[4]


def _read_zip(path: Path, archive: zipfile.ZipFile) -> tuple[Any, set[str], set[str]]:
    names = archive.namelist()
    if any(name.endswith("constants.pkl") or "/code/" in name for name in names):
        raise _Refused("a TorchScript archive (code/ and constants.pkl inside), which runs its own code when "
                       "loaded; give the state_dict saved with torch.save instead")
    pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise ValueError(f"{path}: {UNREADABLE}: a zip without exactly one <folder>/data.pkl: not a torch.save "
                         "file (PyTorch >= 1.6 format)")
    prefix = pickles[0][: -len("data.pkl")]
    if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
        raise ValueError(f"{path}: a big-endian checkpoint, which this reader does not convert")
    storages = _Storages()

    def storage(pid: tuple) -> torch.Tensor:
        storage_type, key, numel = storages.parse(pid, 5)
        if key not in storages.by_key:
            name = f"{prefix}data/{key}"
            try:
                size = archive.getinfo(name).file_size   # checked before reading: no decompressing a bomb
            except KeyError:
                raise pickle.UnpicklingError(f"storage {name} is missing from the archive") from None
            if size != numel * storage_type.itemsize:
                raise pickle.UnpicklingError(f"storage {name} has {size} bytes, expected {numel} x "
                                             f"{storage_type.itemsize}")
            storages.by_key[key] = _tensor(archive.read(name), storage_type)
        return storages.by_key[key]

    unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storage)
    return unpickler.load(), unpickler.placeholders, storages.locations


def _read_legacy(path: Path, stream: IO[bytes]) -> tuple[Any, set[str], set[str]]:
    """The pre-1.6 stream (torch.serialization._legacy_save); storages are filled after the object pickle."""
    size = os.fstat(stream.fileno()).st_size
    storages = _Storages()

    def storage(pid: tuple) -> torch.Tensor:
        storage_type, key, numel = storages.parse(pid, 6)
        if pid[5] is not None:
            raise pickle.UnpicklingError("a storage view (torch < 0.4 files are not read)")
        if key not in storages.by_key:
            declared = numel * storage_type.itemsize + sum(
                t.numel() * t.element_size() for t in storages.by_key.values())
            if declared > size:   # checked before allocating: no memory bomb
                raise pickle.UnpicklingError(f"storage {key} declares {numel} elements, more than the file holds")
            storages.by_key[key] = torch.empty(numel, dtype=storage_type.dtype)
            storages.types[key] = storage_type
        return storages.by_key[key]

    def plain() -> Any:
        return _RestrictedUnpickler(stream, storage).load()

    if plain() != LEGACY_MAGIC:
        raise ValueError(f"{path}: {UNREADABLE}: neither a zip archive nor torch.save's legacy stream")
    if plain() != LEGACY_PROTOCOL:
        raise ValueError(f"{path}: {UNREADABLE}: legacy torch.save protocol is not {LEGACY_PROTOCOL}")
    info = plain()
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise ValueError(f"{path}: a big-endian checkpoint, which this reader does not convert")
    unpickler = _RestrictedUnpickler(stream, storage)
    obj = unpickler.load()
    keys = plain()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages.by_key):
        raise pickle.UnpicklingError("the storage keys after the pickle do not match the storages it uses")
    for key in keys:
        target, storage_type = storages.by_key[key], storages.types[key]
        (count,) = struct.unpack("<q", _exactly(stream, 8))
        if count != target.numel():
            raise pickle.UnpicklingError(f"storage {key} holds {count} elements, the pickle says {target.numel()}")
        target.copy_(_tensor(_exactly(stream, count * storage_type.itemsize), storage_type))
    return obj, unpickler.placeholders, storages.locations


def _exactly(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"file ends {n - len(data)} bytes early")
    return data


def _tensor(raw: bytes, storage_type: _StorageType) -> torch.Tensor:
    if not raw:
        return torch.empty(0, dtype=storage_type.dtype)
    return torch.frombuffer(bytearray(raw), dtype=storage_type.dtype)


def read_pickled_details(path: str | os.PathLike) -> SafeLoad:
    """Unpickle a `torch.save` file safely (see the module docstring); ValueError naming the file if it is not
    one, is damaged, holds TorchScript or calls a function; FileNotFoundError if it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if sys.byteorder != "little":
        raise ValueError(f"{path}: this reader runs on little-endian machines only")
    try:
        with open(path, "rb") as stream:
            if zipfile.is_zipfile(stream):
                stream.seek(0)
                with zipfile.ZipFile(stream) as archive:
                    obj, placeholders, locations = _read_zip(path, archive)
            else:
                stream.seek(0)
                obj, placeholders, locations = _read_legacy(path, stream)
    except _Refused as exc:
        raise ValueError(f"{path}: refused: {exc}") from None
    except ValueError as exc:
        if str(exc).startswith(f"{path}:"):
            raise
        raise ValueError(f"{path}: {UNREADABLE}: {one_line(exc)}") from exc
    except (pickle.UnpicklingError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, TypeError,
            AttributeError, IndexError, KeyError, OverflowError, MemoryError, UnicodeDecodeError, struct.error,
            RecursionError) as exc:
        raise ValueError(f"{path}: {UNREADABLE}: {one_line(exc)}") from exc
    return SafeLoad(obj, tuple(sorted(placeholders)), tuple(sorted(locations)))


def read_pickled(path: str | os.PathLike) -> Any:
    """The object saved in `path` (tensors on the CPU, unknown classes as inert placeholders)."""
    return read_pickled_details(path).obj


def one_line(exc: BaseException) -> str:
    """An exception's text on one line, at most 300 characters (for one-line errors naming a file)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
