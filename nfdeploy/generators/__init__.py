"""NeuralFuse generators: the six paper architectures, a registry and the fused transform.

* :func:`build_generator` -- raw ``G`` by name (case-insensitive) or ``"module:factory"``.
* :func:`register_generator` / :class:`GeneratorRegistry` -- add custom architectures.
* :class:`FusedInput` -- ``F(x) = clamp(x + G(x), lo, hi)`` per channel.
* :func:`count_parameters`, :func:`count_macs` -- model-size figures.

See ``docs/generators.md``.
"""

from .blocks import PaddedGenerator
from .conv import ConvGenerator
from .deconv import DeConvGenerator
from .fused import FusedInput
from .metrics import count_macs, count_parameters
from .registry import (
    BUILTIN_GENERATORS,
    GeneratorFactory,
    GeneratorRegistry,
    build_generator,
    default_registry,
    generator_names,
    register_generator,
)
from .unet import UNetGenerator

__all__ = [
    "BUILTIN_GENERATORS",
    "ConvGenerator",
    "DeConvGenerator",
    "FusedInput",
    "GeneratorFactory",
    "GeneratorRegistry",
    "PaddedGenerator",
    "UNetGenerator",
    "build_generator",
    "count_macs",
    "count_parameters",
    "default_registry",
    "generator_names",
    "register_generator",
]
