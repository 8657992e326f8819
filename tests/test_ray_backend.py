"""validate --backend ray: same report as the process pool, retries a dead worker's trial."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nfdeploy.cli import main
from tests.test_determinism import _validate, inputs, without_timing

__all__ = ["inputs"]  # the fixture, shared with test_determinism


def _run(inputs: dict[str, Path], report: Path, *extra: str) -> Any:
    args = ["validate", "-q", "--model", str(inputs["vendor"]), "--data", str(inputs["data"]),
            "--ber", "0.01", "--report", str(report), *extra]  # fmt: skip
    return CliRunner().invoke(main, args)


def test_without_ray_says_how_to_install(
    inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = _run(inputs, tmp_path / "r.json", "--backend", "ray")
    assert result.exit_code == 1, result.output
    assert "pip install 'nfdeploy[ray]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r.json").exists()


def test_ray_address_needs_the_ray_backend(inputs: dict[str, Path], tmp_path: Path) -> None:
    result = _run(inputs, tmp_path / "r.json", "--ray-address", "ray://head:10001")
    assert result.exit_code == 1 and "--backend ray" in result.output


@pytest.fixture
def local_ray(tmp_path: Path) -> Iterator[Path]:
    """A local 2-CPU Ray whose worker running trial 1 of the second BER exits once."""
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'nfdeploy[ray]'")
    from nfdeploy.validate.ray_backend import CRASH_ONCE_ENV

    marker = tmp_path / "crashed"
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {CRASH_ONCE_ENV: f"1:1:{marker}"}},
    )
    yield marker
    ray.shutdown()


@pytest.mark.slow
def test_ray_equals_the_process_pool_despite_a_dead_worker(
    inputs: dict[str, Path], local_ray: Path, tmp_path: Path
) -> None:
    pool = _validate(inputs, tmp_path / "pool.json", "--threads", "1", "--workers", "2")
    on_ray = _validate(
        inputs, tmp_path / "ray.json", "--threads", "1", "--workers", "2", "--backend", "ray"
    )
    assert local_ray.exists(), "the crash hook never ran: the retry path was not exercised"
    assert json.dumps(without_timing(pool), sort_keys=True) == json.dumps(
        without_timing(on_ray), sort_keys=True
    )
