"""The data-set reader protocol: one registered reader per on-disk format.

In the spirit of onnxruntime's ``CalibrationDataReader``, a reader has two methods:
``detect(path)`` says whether a path holds its format, ``load(path, request)`` reads one
split. :data:`READERS` lists them in detection order; adding a format is one module with a
reader and one entry there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from nfdeploy.data.cifar import is_cifar, load_cifar
from nfdeploy.data.dataset import Dataset
from nfdeploy.data.idx import is_idx, load_idx
from nfdeploy.data.imagefolder import is_imagefolder, load_imagefolder
from nfdeploy.data.npz import load_npz


@dataclass(frozen=True)
class LoadRequest:
    """What every reader is asked for; a reader uses the fields that apply to it."""

    split: str = "test"
    cache_dir: Path | None = None  # decoded image folders
    progress: bool = True


class DataReader(Protocol):
    @property
    def name(self) -> str: ...  # the spec prefix, e.g. 'npz' in 'npz:path/to/file.npz'

    def detect(self, path: Path) -> bool: ...

    def load(self, path: Path, request: LoadRequest) -> Dataset: ...


@dataclass(frozen=True)
class NpzReader:
    name: str = "npz"

    def detect(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == ".npz"

    def load(self, path: Path, request: LoadRequest) -> Dataset:
        return load_npz(path, split=request.split)


@dataclass(frozen=True)
class CifarReader:
    name: str = "cifar"

    def detect(self, path: Path) -> bool:
        return is_cifar(path)

    def load(self, path: Path, request: LoadRequest) -> Dataset:
        return load_cifar(path, split=request.split)


@dataclass(frozen=True)
class IdxReader:
    name: str = "idx"

    def detect(self, path: Path) -> bool:
        return is_idx(path)

    def load(self, path: Path, request: LoadRequest) -> Dataset:
        return load_idx(path, split=request.split)


@dataclass(frozen=True)
class ImageFolderReader:
    name: str = "imagefolder"

    def detect(self, path: Path) -> bool:
        return is_imagefolder(path)

    def load(self, path: Path, request: LoadRequest) -> Dataset:
        return load_imagefolder(
            path, split=request.split, cache_dir=request.cache_dir, progress=request.progress
        )


#: Detection order: the first reader whose ``detect`` accepts a path reads it.
READERS: tuple[DataReader, ...] = (NpzReader(), CifarReader(), IdxReader(), ImageFolderReader())
BY_NAME = MappingProxyType({reader.name: reader for reader in READERS})
