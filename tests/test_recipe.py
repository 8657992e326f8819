"""Recipe options: soft targets, worst-k, BER warm-up, augmentation, label-free training."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from nfdeploy.cli import main
from nfdeploy.data.augment import crop_flip
from nfdeploy.runs.config import TrainConfig
from nfdeploy.torchify import load_vendor
from nfdeploy.train.eopm import chunk_weight_sets, eopm_step, loss_weights
from nfdeploy.train.recipe import step_ber
from tests.test_fast_training import LAM, VENDORS, N, _fused, _gradients, _weight_sets
from tests.test_train import _train_args, data_path, vendor_path  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.rand(6, 3, 16, 16) * 2 - 1, torch.randint(0, 10, (6,))


def _oracle(path: Path, targets: torch.Tensor, per_set: object) -> tuple[float, torch.Tensor]:
    """The loss written out in one graph; ``per_set(losses) -> total`` combines the sets."""
    vendor, sets = load_vendor(path), _weight_sets(path)
    x, _ = _inputs()
    fused = _fused()
    inputs = fused(x)
    losses = []
    for weights in sets:
        with vendor.weight_overrides(weights):
            logits = vendor(inputs)
        if targets.is_floating_point():
            losses.append(F.cross_entropy(logits / 2.0, targets) * 4.0)
        else:
            losses.append(F.cross_entropy(logits, targets))
    total = per_set(losses)  # type: ignore[operator]
    total.backward()
    return float(total.detach()), _gradients(fused)


def _ours(
    path: Path, targets: torch.Tensor, chunk: int = 1, **kwargs: object
) -> tuple[float, torch.Tensor]:
    vendor, sets = load_vendor(path), _weight_sets(path)
    x, _ = _inputs()
    fused = _fused()
    chunks = chunk_weight_sets(sets, loss_weights(N, LAM), chunk)
    loss = eopm_step(fused, vendor, x, targets, chunks, **kwargs)  # type: ignore[arg-type]
    return loss, _gradients(fused)


def _close(a: tuple[float, torch.Tensor], b: tuple[float, torch.Tensor]) -> None:
    assert a[0] == pytest.approx(b[0], rel=1e-5)
    torch.testing.assert_close(a[1], b[1], rtol=1e-4, atol=1e-5 * float(b[1].abs().max()))


@pytest.mark.parametrize("chunk", [1, N + 1])
def test_soft_targets_are_the_temperature_scaled_cross_entropy(tmp_path: Path, chunk: int) -> None:
    path = VENDORS["conv_gemm"](tmp_path)
    probs = torch.softmax(torch.randn(6, 10), dim=1)
    expected = _oracle(path, probs, lambda ls: ls[0] + LAM / N * sum(ls[1:]))
    _close(_ours(path, probs, chunk, temperature=2.0), expected)


def test_worst_k_keeps_the_largest_perturbed_losses(tmp_path: Path) -> None:
    path = VENDORS["conv_gemm"](tmp_path)
    _, y = _inputs()

    def top2(losses: list[torch.Tensor]) -> torch.Tensor:
        worst = sorted(losses[1:], key=lambda t: float(t.detach()), reverse=True)[:2]
        return losses[0] + LAM / 2 * sum(worst)

    _close(_ours(path, y, worst_k=2), _oracle(path, y, top2))
    # k = N is the plain EOPM loss
    _close(_ours(path, y, worst_k=N), _ours(path, y))


def test_no_perturbed_models_is_plain_training() -> None:
    assert loss_weights(0, LAM) == [1.0]
    assert loss_weights(2, LAM) == [1.0, 2.5, 2.5]


def test_ber_warmup_ramps_to_the_target() -> None:
    config = TrainConfig(vendor="v", data="d", train_ber=0.01, ber_warmup=0.5)
    bers = [step_ber(config, step, 10) for step in range(10)]
    assert bers[0] == pytest.approx(0.002) and bers[4] == pytest.approx(0.01)
    assert bers[4:] == [pytest.approx(0.01)] * 6
    assert all(a <= b for a, b in itertools.pairwise(bers))
    assert step_ber(TrainConfig(vendor="v", data="d"), 3, 10) is None


def test_crop_flip_is_seeded_and_keeps_pixels() -> None:
    images = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    a = crop_flip(images, np.random.default_rng(5))
    b = crop_flip(images, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == images.shape and a.dtype == images.dtype
    plain = crop_flip(images, np.random.default_rng(5), pad=0)  # no shift: identity or mirror
    for orig, out in zip(images, plain, strict=True):
        assert np.array_equal(out, orig) or np.array_equal(out, orig[:, ::-1])


def _train(vendor: Path, data: Path, run: Path, *extra: str) -> CliRunner:  # type: ignore[type-arg]
    result = CliRunner().invoke(main, [*_train_args(vendor, data, run), "--epochs", "1", *extra])
    assert result.exit_code == 0, result.output
    return result  # type: ignore[return-value]


def test_label_free_training_never_reads_labels(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    # scramble the labels: a label-free run must train exactly as before
    data = dict(np.load(data_path))
    scrambled = tmp_path / "scrambled.npz"
    np.savez(scrambled, x=data["x"], y=(data["y"] + 1) % 3)
    states = []
    for name, source in (("a", data_path), ("b", scrambled)):
        run = tmp_path / name
        _train(vendor_path, source, run, "--labels", "vendor")
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert rows[0]["ca"] == 1.0  # held-out scored against the clean vendor itself
        states.append(torch.load(run / "last.pt", weights_only=True)["generator"])
    for key, tensor in states[0].items():
        torch.testing.assert_close(states[1][key], tensor, rtol=0, atol=0)


def test_recipe_options_run_and_are_recorded(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    _train(vendor_path, data_path, run, "--soft-targets", "2", "--worst-k", "1",
           "--ber-warmup", "0.5", "--augment", "crop-flip")  # fmt: skip
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["soft_targets"], config["worst_k"], config["ber_warmup"], config["augment"]) == (
        2.0, 1, 0.5, "crop-flip",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--worst-k", "3"], "--worst-k 3"),
        (["--worst-k", "1", "--perturbed-chunk", "3"], "--worst-k works with the per-model loop"),
        (["--ber-warmup", "1.5"], "--ber-warmup"),
        (["--augment", "rotate"], "--augment"),
        (["--labels", "none"], "--labels"),
        (["--holdout-trials", "0"], "--holdout-trials"),
    ],
)
def test_bad_recipe_options_are_one_line(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
    extra: list[str],
    message: str,
) -> None:
    run = tmp_path / "run"
    result = CliRunner().invoke(main, [*_train_args(vendor_path, data_path, run), *extra])
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output and not run.exists()


def test_label_free_accepts_data_whose_labels_do_not_fit(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    data = dict(np.load(data_path))
    odd = tmp_path / "odd.npz"
    np.savez(odd, x=data["x"], y=np.full_like(data["y"], 7))  # the vendor has 3 classes
    run = tmp_path / "run"
    bad = CliRunner().invoke(main, [*_train_args(vendor_path, odd, run), "--epochs", "1"])
    assert bad.exit_code != 0 and "label 7" in bad.output and not run.exists()
    _train(vendor_path, odd, run, "--labels", "vendor")


def test_holdout_trials_sets_the_patterns_of_the_held_out_figure(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    epoch0 = {}
    for trials in (1, 6):
        run = tmp_path / f"run{trials}"
        _train(vendor_path, data_path, run, "--holdout-trials", str(trials))
        assert json.loads((run / "config.json").read_text())["config"]["holdout_trials"] == trials
        epoch0[trials] = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert epoch0[1]["ca"] == epoch0[6]["ca"]  # the clean figure does not depend on patterns
    assert epoch0[1]["pa"] != epoch0[6]["pa"]


def test_defaults_are_the_recipe_study_winners(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    args = [a for a in _train_args(vendor_path, data_path, run) if a not in ("--n-perturbed", "2")]
    result = CliRunner().invoke(main, [*args, "--epochs", "1", "--limit", "60"])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["soft_targets"], config["n_perturbed"]) == (2.0, 5)


def test_run_folders_from_before_soft_targets_keep_hard_labels() -> None:
    stored = {"vendor": "v.onnx", "data": "d", "n_perturbed": 10}
    assert TrainConfig.from_dict(stored).soft_targets == 0.0
    assert TrainConfig.from_dict({**stored, "soft_targets": 2.0}).soft_targets == 2.0
