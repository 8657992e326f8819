"""The in-memory data set (uint8 NHWC images + int64 labels) and batching."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nfdeploy.data.preprocess import Preprocess
from nfdeploy.errors import NfdeployError

__all__ = ["Dataset", "iter_batches"]


@dataclass
class Dataset:
    """Images as uint8 (N,H,W,C), C in {1,3}; labels int64 (N,) indexing ``class_names``."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    source: str

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.ndim == 3:
            images = images[..., None]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise NfdeployError(
                f"{self.source}: images must be uint8 (N,H,W,C) with C in {{1,3}}, "
                f"got {images.dtype} {images.shape}"
            )
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise NfdeployError(
                f"{self.source}: labels must be integers of shape (N,), got {labels.dtype} "
                f"{labels.shape}"
            )
        if len(labels) != len(images):
            raise NfdeployError(
                f"{self.source}: {len(images)} images but {len(labels)} labels; "
                "each image needs exactly one label"
            )
        labels = labels.astype(np.int64, copy=False)
        self.class_names = [str(c) for c in self.class_names]
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise NfdeployError(
                f"{self.source}: labels span {labels.min()}..{labels.max()} but there are "
                f"{len(self.class_names)} class names"
            )
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        _, h, w, c = self.images.shape
        return h, w, c

    def subset(self, n: int, *, seed: int) -> Dataset:
        """A deterministic, class-stratified subset of ``n`` images, kept in original order.

        Each class contributes in proportion to its share (largest-remainder by random
        rank), so a 1,000-image subset of a balanced 10-class set has 100 per class.
        """
        if n < 1:
            raise NfdeployError(f"subset size must be >= 1, got {n}")
        total = len(self)
        if n >= total:
            return self
        rng = np.random.default_rng(seed)
        perm = rng.permutation(total)
        labels = self.labels[perm]
        # Rank of each permuted item within its class, normalised by class size: taking the
        # n smallest gives a proportional (stratified) sample; ties fall to the permutation.
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=self.num_classes)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(total, dtype=np.float64)
        rank[order] = np.arange(total) - np.repeat(starts, counts)
        frac = (rank + 0.5) / counts[labels]
        chosen = perm[np.argsort(frac, kind="stable")[:n]]
        chosen.sort()
        return Dataset(
            images=self.images[chosen],
            labels=self.labels[chosen],
            class_names=list(self.class_names),
            source=f"{self.source} [subset {n} of {total}, seed {seed}]",
        )

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)


def iter_batches(
    ds: Dataset, preprocess: Preprocess, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (float32 NCHW inputs, int64 labels) in data-set order; the last batch may be short."""
    if batch_size < 1:
        raise NfdeployError(f"batch size must be >= 1, got {batch_size}")
    for start in range(0, len(ds), batch_size):
        stop = start + batch_size
        yield preprocess.apply(ds.images[start:stop]), ds.labels[start:stop]
