"""Resolved training configuration, stored as config.json in the run folder."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.spec import DEFAULT_FAULT_MODEL, MAX_SEED


class Precision(str, enum.Enum):
    FP32 = "fp32"
    BF16 = "bf16"


PRECISION_CHOICES = ("auto", *(p.value for p in Precision))

LABEL_SOURCES = ("data", "vendor")
AUGMENTATIONS = ("none", "crop-flip")


@dataclass(frozen=True)
class TrainConfig:
    vendor: str  # the vendor ONNX (never written; sha256 recorded)
    data: str
    # restricted access: gradients come from these models instead of the vendor, global step
    # k from surrogates[k % len(surrogates)]; () = from the vendor. Absolute paths. Run
    # folders from before the ensemble stored one path or null as "surrogate" (see upgraded).
    surrogates: tuple[str, ...] = ()
    init_from: str | None = None  # warm start: G's weights from this run's best.pt
    generator: str = "UNetS"
    preprocess: str | None = None  # text form; None = stored with the vendor, else 'unit'
    epochs: int = 10
    batch_size: int = 25
    lr: float = 1e-3
    lr_floor: float = 0.05  # cosine decay to lr * lr_floor over the whole run
    n_perturbed: int = 5  # beat 10 and (on the demo setting) 2 at equal compute: docs/training.md
    lam: float = 5.0
    train_ber: float = 0.01
    fault_model: str = DEFAULT_FAULT_MODEL.value
    storage: str = "auto"
    bits: str | None = None
    include_bias: bool = False
    tensors: str | None = None
    seed: int = 0
    holdout: int = 500  # images held out of the train split for per-epoch CA(NF)/PA(NF)
    holdout_trials: int = 3
    limit: int | None = None  # use only this many training images (seeded subset)
    precision: str = "auto"  # auto | fp32 | bf16 (autocast); see train/precision.py
    perturbed_chunk: int = 0  # weight sets per batched vendor call; 0 = auto (see setup.py)
    compile: bool = False  # torch.compile the vendor passes (per-model loop only)
    # recipe (docs/training.md, "Recipe options")
    labels: str = "data"  # data | vendor: the clean vendor's own predictions (label-free)
    soft_targets: float = 2.0  # > 0: the clean vendor's softmax at this temperature as targets
    worst_k: int = 0  # > 0: only the k highest of the N perturbed losses count in each step
    ber_warmup: float = 0.0  # fraction of the run over which the BER ramps from 0 to train_ber
    augment: str = "none"  # none | crop-flip (4-pixel padded random crop, horizontal flip)
    channels_last: bool = True
    threads: int = 0
    device: str = "cpu"  # torch device for G and the vendor's gradients, e.g. "cuda"
    # vendor, data (a path each) and surrogates (a list, in order) relative to the run folder
    # (the fields above are absolute), so that --resume finds them after the whole tree
    # moved; see nfdeploy.train.paths
    from_run: dict[str, Any] | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"--epochs {self.epochs}: need at least 1."),
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: need at least 1."),
            (self.lr > 0, f"--lr {self.lr}: the learning rate must be positive."),
            (self.n_perturbed >= 0, f"--n-perturbed {self.n_perturbed}: use 0 or more."),
            (self.lam >= 0, f"--lambda {self.lam}: use 0 or more."),
            (
                0 <= self.train_ber <= 1,
                f"--train-ber {self.train_ber}: a rate in [0, 1], e.g. 0.01.",
            ),
            (self.holdout >= 0, f"--holdout {self.holdout}: use 0 or more images."),
            (self.labels in LABEL_SOURCES, f"--labels {self.labels}: use data or vendor."),
            (self.soft_targets >= 0, f"--soft-targets {self.soft_targets}: a temperature >= 0."),
            (
                0 <= self.worst_k <= self.n_perturbed,
                f"--worst-k {self.worst_k}: use 0 (all) .. --n-perturbed ({self.n_perturbed}).",
            ),
            (
                not (self.worst_k and self.perturbed_chunk > 1),
                "--worst-k works with the per-model loop only; use --perturbed-chunk 1 with it.",
            ),
            (0 <= self.ber_warmup <= 1, f"--ber-warmup {self.ber_warmup}: a fraction in [0, 1]."),
            (self.augment in AUGMENTATIONS, f"--augment {self.augment}: use none or crop-flip."),
            (
                self.perturbed_chunk >= 0,
                f"--perturbed-chunk {self.perturbed_chunk}: use 0 (auto) or more.",
            ),
            (
                0 <= self.seed <= MAX_SEED,
                f"--seed {self.seed}: use 0 .. 2**63 - 1 ({MAX_SEED}).",
            ),
            (self.threads >= 0, f"--threads {self.threads}: use 0 (torch's default) or more."),
            (
                self.precision in PRECISION_CHOICES,
                f"--precision {self.precision}: use one of {', '.join(PRECISION_CHOICES)}.",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise NfdeployError(message)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in upgraded(data).items() if k in names})


def upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """A stored config (config.json's "config", or a checkpoint's) in today's fields."""
    data = dict(data)
    if "amp" in data and "precision" not in data:  # run folders from before --precision
        data["precision"] = "bf16" if data["amp"] else "fp32"
    if "soft_targets" not in data:  # run folders from before --soft-targets: hard labels
        data["soft_targets"] = 0.0
    if "surrogates" not in data:  # before the ensemble: "surrogate", one path or null
        data["surrogates"] = [data["surrogate"]] if data.get("surrogate") else []
        from_run = data.get("from_run")
        if isinstance(from_run, dict) and "surrogate" in from_run:
            from_run = {**from_run, "surrogates": [from_run["surrogate"]]}
            data["from_run"] = {k: v for k, v in from_run.items() if k != "surrogate"}
    data["surrogates"] = tuple(data["surrogates"] or ())
    return data
