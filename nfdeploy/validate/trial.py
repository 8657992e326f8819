"""One trial: the faulty vendor session built once, then PA and each generator's PA(NF)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_model import FaultableModel
from nfdeploy.faults.spec import FaultSpec
from nfdeploy.onnx.session import CPU_ONLY, make_session
from nfdeploy.runtime.session import run_logits
from nfdeploy.validate.report import TrialResult

TrialOutcome = tuple[TrialResult, np.ndarray, np.ndarray | None]  # result, PA preds, PA(NF) preds


class Fuser:
    """Applies G (clean once, or faulty per trial with --faulty-generator)."""

    def __init__(
        self,
        generator: FaultableModel | None,
        x: np.ndarray,
        batch: int,
        threads: int,
        *,
        providers: tuple[str, ...] = CPU_ONLY,
        clean: np.ndarray | None = None,  # G(x) when already computed (pool workers)
    ) -> None:
        self.generator, self.batch, self.threads, self.x = generator, batch, threads, x
        self.providers = providers
        self._name = None if generator is None else str(generator.path)
        if clean is None and generator is not None:
            clean = self.fuse(generator.clean_bytes())
        self.clean = clean

    def fuse(self, model_bytes: bytes) -> np.ndarray:
        session = make_session(
            model_bytes, threads=self.threads, name=self._name, providers=self.providers
        )
        fused = run_logits(session, self.x, batch_size=self.batch)
        if fused.shape != self.x.shape and self.generator is not None:
            raise NfdeployError(
                f"{self.generator.path}: not a generator: it maps {list(self.x.shape)} to "
                f"{list(fused.shape)}; pass the generator.onnx written by `nfdeploy export`."
            )
        return fused

    def for_trial(self, spec: FaultSpec | None, seed: int) -> tuple[np.ndarray | None, int]:
        """Fused inputs for this trial and the number of generator bits changed."""
        if self.generator is None or spec is None:
            return self.clean, 0
        spec = dataclasses.replace(spec, storage=self.generator.storage)
        faulty, changed = self.generator.faulty_bytes(spec, seed=seed, threads=max(self.threads, 1))
        return self.fuse(faulty), changed


@dataclass(frozen=True)
class TrialInputs:
    """What every trial of a run shares (built once per process)."""

    vendor: FaultableModel
    fusers: list[Fuser]
    x: np.ndarray
    labels: np.ndarray
    faulty_generator: bool
    threads: int
    batch_size: int
    providers: tuple[str, ...] = CPU_ONLY


def predict(session: ort.InferenceSession, x: np.ndarray, batch_size: int) -> np.ndarray:
    logits = run_logits(session, x, batch_size=batch_size)
    if logits.ndim != 2 or logits.shape[0] != len(x):
        raise NfdeployError(
            f"the vendor model returned {list(logits.shape)} for {len(x)} images, not "
            "[N, classes]; nfdeploy needs a classifier with one row of class scores per image."
        )
    return np.argmax(logits, axis=1)


def run_trial(inputs: TrialInputs, spec: FaultSpec, trial: int, seed: int) -> list[TrialOutcome]:
    """One fault pattern: build the faulty session once, then PA and each generator's PA(NF)."""
    i = inputs
    start = time.perf_counter()
    faulty, changed = i.vendor.faulty_bytes(spec, seed=seed, threads=max(i.threads, 1))
    session = make_session(
        faulty, threads=i.threads, name=str(i.vendor.path), providers=i.providers
    )
    inject_s = time.perf_counter() - start
    start = time.perf_counter()
    pred = predict(session, i.x, i.batch_size)
    base_s = time.perf_counter() - start
    pa = float(np.mean(pred == i.labels))
    out = []
    for fuser in i.fusers:
        fused, gen_changed = fuser.for_trial(spec if i.faulty_generator else None, seed)
        start = time.perf_counter()
        pred_nf = None if fused is None else predict(session, fused, i.batch_size)
        infer_s = base_s + time.perf_counter() - start
        pa_nf = None if pred_nf is None else float(np.mean(pred_nf == i.labels))
        result = TrialResult(trial, seed, changed, pa, pa_nf, inject_s, infer_s, gen_changed)
        out.append((result, pred, pred_nf))
    return out
