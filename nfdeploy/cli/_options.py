"""Options shared by several commands, each declared once with its type and range.

Commands take these decorators instead of repeating ``click.option(...)``, so ``--seed``,
``--batch-size``, ``--threads``, ``--tensors`` and ``--storage`` accept exactly the same
values everywhere and a bad value is refused by click, as one line naming the option,
before any library code runs. This module must stay torch-free (``validate`` imports it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import click

from nfdeploy.faults.spec import (
    DEFAULT_FAULT_MODEL,
    MAX_SEED,
    TRAINABLE_FAULT_MODELS,
    FaultModel,
    Storage,
)

STORAGE_CHOICES = ["auto", *[s.value for s in Storage]]
FAULT_MODEL_HELP = (
    "flip: each bit flips with prob. BER. stuck-at: each cell faulty with prob. BER, stuck at "
    "0/1 (reference '1%' = ~0.5% flips). ref-tiled: stuck-at cells of the NeuralFuse "
    "reference's 8192x128 map per seed, tiled over every layer, so faults repeat (its figures' "
    "model). chip-map: fixed map from --chip-map (validate only)."
)

SEED = click.IntRange(0, MAX_SEED)
BATCH_SIZE = click.IntRange(min=1)
THREADS = click.IntRange(min=0)
TRIALS = click.IntRange(1, 1_000_000)

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _check_regex(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        re.compile(value)
    except re.error as exc:
        raise click.BadParameter(
            f"{value!r} is not a valid regular expression ({exc}); e.g. 'conv|fc\\.weight'."
        ) from None
    return value


def seed_option(default: int, help: str | None = None) -> Decorator:
    return click.option("--seed", type=SEED, default=default, show_default=True, help=help)


def batch_size_option(default: int, help: str | None = None) -> Decorator:
    return click.option(
        "--batch-size", type=BATCH_SIZE, default=default, show_default=True, help=help
    )


def trials_option(default: int, help: str) -> Decorator:
    return click.option("--trials", type=TRIALS, default=default, show_default=True, help=help)


def split_option() -> Decorator:
    return click.option(
        "--split", default="test", show_default=True, help="Split to use when the data has several."
    )


def limit_option(help: str = "Use only this many images (seeded subset).") -> Decorator:
    return click.option("--limit", type=click.IntRange(min=1), default=None, help=help)


def report_option() -> Decorator:
    return click.option(
        "--report",
        type=click.Path(dir_okay=False),
        default=None,
        help="Write the JSON report here.",
    )


def threads_option(help: str) -> Decorator:
    return click.option("--threads", type=THREADS, default=0, show_default=True, help=help)


def tensors_option() -> Decorator:
    return click.option(
        "--tensors",
        default=None,
        callback=_check_regex,
        help="Regex: only initializers whose name matches.",
    )


def storage_option(help: str) -> Decorator:
    return click.option(
        "--storage",
        type=click.Choice(STORAGE_CHOICES),
        default="auto",
        show_default=True,
        help=help,
    )


STORAGE_HELP = "How weights are stored: auto = qdq for a QDQ model, else int8-tensor (paper)."


def fault_options(*, training: bool = False) -> Decorator:
    """--fault-model, --storage, --bits, [--chip-map,] --include-bias and --tensors, declared
    once for every command; training takes every model but chip-map (a fixed chip)."""
    models = TRAINABLE_FAULT_MODELS if training else tuple(FaultModel)
    options: list[Decorator] = [
        click.option(
            "--fault-model",
            type=click.Choice([m.value for m in models]),
            default=DEFAULT_FAULT_MODEL.value,
            show_default=True,
            help=FAULT_MODEL_HELP,
        ),
        storage_option(STORAGE_HELP),
        click.option(
            "--bits", default=None, help="Only these bit positions fail, e.g. '7' or '6-7'."
        ),
        *([] if training else [_chip_map_option()]),
        click.option("--include-bias", is_flag=True, help="Also inject into Conv/Gemm biases."),
        tensors_option(),
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _chip_map_option() -> Decorator:
    return click.option(
        "--chip-map",
        type=click.Path(dir_okay=False, exists=True),
        default=None,
        help="Persistent cell map (.npz) for --fault-model chip-map; see `nfdeploy chipmap`.",
    )
