"""Summary statistics over trials: mean, population std (as the paper reports) and a 95% CI."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 97.5% Student-t quantiles for 1..30 degrees of freedom; 1.96 beyond.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float  # population std over trials
    ci95: tuple[float, float]  # t-interval of the mean (sample std)
    n: int

    def to_dict(self) -> dict[str, object]:
        return {"mean": self.mean, "std": self.std, "ci95": list(self.ci95), "n": self.n}

    def text(self, scale: float = 100.0) -> str:
        return f"{self.mean * scale:5.1f} ± {self.std * scale:4.1f}"


def summarize(values: Sequence[float]) -> Summary:
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarize")
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(mean, 0.0, (mean, mean), 1)
    squares = math.fsum((v - mean) ** 2 for v in values)
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    half = t * math.sqrt(squares / (n - 1)) / math.sqrt(n)
    return Summary(mean, math.sqrt(squares / n), (mean - half, mean + half), n)
