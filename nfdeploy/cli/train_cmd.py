"""`nfdeploy train`: EOPM training of a generator against the vendor model (or a surrogate)."""

from __future__ import annotations

import click
from click.core import ParameterSource

from nfdeploy.cli._errors import user_errors
from nfdeploy.cli._options import (
    batch_size_option,
    fault_options,
    seed_option,
    threads_option,
)
from nfdeploy.runs.config import TrainConfig
from nfdeploy.train.precision import PRECISION_CHOICES


@click.command("train")
@click.option(
    "--model",
    "vendor",
    type=click.Path(dir_okay=False),
    default=None,
    help="Vendor ONNX model (frozen).",
)
@click.option(
    "--data", default=None, help="Training data: a folder, CIFAR/IDX/npz path, or 'synthetic'."
)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run folder to create.")
@click.option(
    "--resume",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Continue this run folder (--model/--data/--surrogate: where moved files are now).",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --out: start over in an existing run folder (deletes its metrics, checkpoints "
    "and generator.onnx). With --resume: continue although the vendor or a surrogate file "
    "changed.",
)
@click.option(
    "--surrogate",
    "surrogates",
    type=click.Path(dir_okay=False),
    multiple=True,
    help="Restricted access: take gradients from this ONNX model instead of the vendor's. "
    "Repeat for an ensemble of M: step k of the run uses surrogate k mod M (in the order "
    "given), and the held-out CA(NF)/PA(NF) is their mean. With --resume: where moved "
    "surrogates are now, each one, in the run's order.",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True),
    default=None,
    help="Warm start: begin with the generator weights of this run folder (its best.pt) or "
    ".pt file; the optimizer and lr schedule start fresh.",
)
@click.option(
    "--generator",
    default="UNetS",
    show_default=True,
    help="ConvL, ConvS, DeConvL, DeConvS, UNetL, UNetS or module:factory.",
)
@click.option(
    "--preprocess", default=None, help="e.g. 'cifar10', 'unit', 'mean=.5/.5/.5,std=.5/.5/.5'."
)
@click.option(
    "--epochs", type=int, default=None, help="[default: 10] With --resume: train up to this epoch."
)
@batch_size_option(25)
@click.option(
    "--lr",
    type=float,
    default=None,
    help="Adam lr; cosine decay to 5% of it over the run [default: 1e-3 x sqrt(batch / 25)].",
)
@click.option(
    "--n-perturbed",
    type=int,
    default=TrainConfig.n_perturbed,
    show_default=True,
    help="N perturbed models per step.",
)
@click.option(
    "--lambda",
    "lam",
    type=float,
    default=5.0,
    show_default=True,
    help="Weight of the perturbed losses.",
)
@click.option("--train-ber", type=float, default=0.01, show_default=True)
@fault_options(training=True)
@seed_option(0, "Seed of the generator's initial weights, data order and fault patterns.")
@click.option(
    "--holdout",
    type=int,
    default=500,
    show_default=True,
    help="Training images held out for per-epoch CA(NF)/PA(NF).",
)
@click.option(
    "--holdout-trials",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Fault patterns (fixed seeds) per held-out PA(NF); the best epoch is picked on it.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use only this many training images.",
)
@click.option(
    "--precision",
    type=click.Choice(list(PRECISION_CHOICES)),
    default=None,
    help="auto = bf16 autocast on CUDA and on CPUs with AMX/AVX-512 bf16, else fp32 "
    "[default: auto; with --resume: as stored].",
)
@click.option("--amp", is_flag=True, hidden=True, help="Alias of --precision bf16.")
@click.option(
    "--perturbed-chunk",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Models (clean + perturbed) per batched vendor call; 0 = auto (1 on CPU, 11 on CUDA).",
)
@click.option(
    "--compile/--no-compile",
    "compile_passes",
    default=None,
    help="torch.compile the vendor passes: about 40 s to compile, then faster passes "
    "(1.3x on a ResNet-20 step on 2 CPU cores); per-model loop only [default: off; with "
    "--resume: as stored].",
)
@click.option(
    "--labels",
    type=click.Choice(["data", "vendor"]),
    default="data",
    show_default=True,
    help="vendor: train on the clean vendor's own predictions (label-free; no label is read).",
)
@click.option(
    "--soft-targets",
    type=click.FloatRange(min=0),
    default=TrainConfig.soft_targets,
    show_default=True,
    help="T > 0: aim at the clean vendor's softmax at temperature T (KL); 0: at the labels.",
)
@click.option(
    "--worst-k",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="k > 0: only the k largest of the N perturbed losses count in each step.",
)
@click.option(
    "--ber-warmup",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Ramp the BER linearly from 0 to --train-ber over this fraction of the run.",
)
@click.option(
    "--augment",
    type=click.Choice(["none", "crop-flip"]),
    default="none",
    show_default=True,
    help="crop-flip: random 4-pixel shifted crops and horizontal flips of the training images.",
)
@threads_option("torch threads (0 = default).")
@click.option(
    "--device",
    default=None,
    help="torch device for training, e.g. 'cuda' or 'cuda:1' [default: cpu; with --resume: as stored].",
)
@click.option(
    "--stop-after",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this epoch (resume later with --resume).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def train_command(**options: object) -> None:
    """Train a NeuralFuse generator with EOPM; the vendor's weights stay unchanged."""
    from nfdeploy.train.api import train_from_options
    from nfdeploy.train.resume import RESUME_MAY_CHANGE

    if options.get("resume"):  # other options would be ignored silently: say so instead
        ctx = click.get_current_context()
        for param in ctx.command.params:
            source = ctx.get_parameter_source(param.name or "")
            if param.name not in RESUME_MAY_CHANGE and source is ParameterSource.COMMANDLINE:
                raise click.UsageError(
                    f"{param.opts[0]} cannot change on --resume: the run keeps the settings in "
                    f"{options['resume']}/config.json (only --epochs, --device, --precision, "
                    "--compile, --stop-after, --force, and --model/--data/--surrogate for moved "
                    "files); start a new run with --out for other settings.",
                    ctx,
                )
    with user_errors():
        train_from_options(**options)  # type: ignore[arg-type]
