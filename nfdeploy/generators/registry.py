"""Generator registry: the six paper architectures plus user registrations.

State lives in :class:`GeneratorRegistry` instances, never in bare module globals. The
module creates one instance, :data:`default_registry`, pre-loaded with the built-ins; the
module-level helpers (:func:`build_generator`, :func:`register_generator`,
:func:`generator_names`) act on it unless given ``registry=``. Code that wants isolation
(tests, plugins, a library embedding nfdeploy) makes its own with
``GeneratorRegistry()`` (built-ins only) or ``default_registry.copy()``; registrations in one
instance never show up in another.

Besides registered names, :meth:`GeneratorRegistry.build` accepts import strings of the
form ``"package.module:factory"`` (``factory`` may be dotted, e.g. ``"pkg.mod:Cls.build"``),
so a custom architecture needs no registration and no edit to nfdeploy.

A factory is any callable ``factory(*, channels, height, width) -> torch.nn.Module`` whose
module maps ``(N, channels, height, width)`` to the same shape (the raw ``G(x)``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import TypeVar

from torch import nn

from ..errors import NfdeployError
from .conv import conv_l, conv_s
from .deconv import deconv_l, deconv_s
from .unet import unet_l, unet_s

__all__ = [
    "BUILTIN_GENERATORS",
    "GeneratorFactory",
    "GeneratorRegistry",
    "build_generator",
    "default_registry",
    "generator_names",
    "register_generator",
]

GeneratorFactory = Callable[..., nn.Module]
Factory = TypeVar("Factory", bound=Callable[..., nn.Module])

#: The paper's generators, in the paper's order.
BUILTIN_GENERATORS: dict[str, GeneratorFactory] = {
    "ConvL": conv_l,
    "ConvS": conv_s,
    "DeConvL": deconv_l,
    "DeConvS": deconv_s,
    "UNetL": unet_l,
    "UNetS": unet_s,
}


def _check_dims(channels: int, height: int, width: int) -> None:
    for label, value in (("channels", channels), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise NfdeployError(f"generator {label} must be a positive integer, got {value!r}")


def _import_factory(spec: str) -> GeneratorFactory:
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise NfdeployError(
            f"bad generator import string {spec!r}: expected 'package.module:factory'"
        )
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise NfdeployError(
            f"cannot import module {module_name!r} for generator {spec!r}: {exc}. "
            "Is it installed or on PYTHONPATH?"
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise NfdeployError(
                f"generator {spec!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from exc
    if not callable(obj):
        raise NfdeployError(f"generator {spec!r} is not callable")
    return obj


class GeneratorRegistry:
    """Case-insensitive name -> factory map.

    ``GeneratorRegistry()`` starts with the six built-ins; pass ``builtins=False`` for an
    empty one. Names must be non-empty and may not contain ``':'`` (reserved for import
    strings); registering a name twice (in any letter case) is an error.
    """

    def __init__(self, *, builtins: bool = True) -> None:
        self._factories: dict[str, tuple[str, GeneratorFactory]] = {}
        if builtins:
            for name, factory in BUILTIN_GENERATORS.items():
                self.add(name, factory)

    # -- registration -------------------------------------------------------------------
    def add(self, name: str, factory: GeneratorFactory) -> None:
        """Register ``factory`` under ``name``."""
        if not isinstance(name, str) or not name.strip() or ":" in name:
            raise NfdeployError(
                f"invalid generator name {name!r}: use a non-empty name without ':'"
            )
        if not callable(factory):
            raise NfdeployError(f"generator factory for {name!r} is not callable")
        key = name.strip().lower()
        if key in self._factories:
            raise NfdeployError(
                f"generator {name!r} is already registered (as {self._factories[key][0]!r})"
            )
        self._factories[key] = (name.strip(), factory)

    def register(self, name: str) -> Callable[[Factory], Factory]:
        """Decorator form of :meth:`add`; returns the factory unchanged."""

        def decorator(factory: Factory) -> Factory:
            self.add(name, factory)
            return factory

        return decorator

    def remove(self, name: str) -> None:
        """Forget a registration (unknown name -> :class:`NfdeployError`)."""
        key = name.strip().lower()
        if key not in self._factories:
            raise NfdeployError(self._unknown_message(name))
        del self._factories[key]

    def copy(self) -> GeneratorRegistry:
        """An independent registry with the same registrations."""
        new = GeneratorRegistry(builtins=False)
        new._factories = dict(self._factories)
        return new

    # -- lookup -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Registered names, in their registered spelling and registration order."""
        return [display for display, _ in self._factories.values()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower() in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._factories)

    def _unknown_message(self, name: str) -> str:
        known = ", ".join(self.names()) or "(none)"
        return (
            f"unknown generator {name!r}; known generators: {known}; "
            "or give an import string 'package.module:factory'"
        )

    def factory(self, name: str) -> GeneratorFactory:
        """The factory for a registered name or a ``module:attr`` import string."""
        if not isinstance(name, str):
            raise NfdeployError(f"generator name must be a string, got {name!r}")
        key = name.strip().lower()
        if key in self._factories:
            return self._factories[key][1]
        if ":" in name:
            return _import_factory(name.strip())
        raise NfdeployError(self._unknown_message(name))

    def build(
        self, name: str, *, channels: int = 3, height: int = 32, width: int = 32
    ) -> nn.Module:
        """Instantiate generator ``name`` for ``(N, channels, height, width)`` inputs."""
        _check_dims(channels, height, width)
        factory = self.factory(name)
        try:
            inspect.signature(factory).bind(channels=channels, height=height, width=width)
        except TypeError as exc:
            raise NfdeployError(
                f"generator factory {name!r} must accept keyword arguments "
                f"channels=, height=, width= ({exc})"
            ) from exc
        except ValueError:  # no introspectable signature (some builtins): just try it
            pass
        module = factory(channels=channels, height=height, width=width)
        if not isinstance(module, nn.Module):
            raise NfdeployError(
                f"generator factory {name!r} returned {type(module).__name__}, "
                "expected a torch.nn.Module"
            )
        return module


#: The process-wide registry used by the module-level helpers and the CLI.
default_registry = GeneratorRegistry()


def build_generator(
    name: str,
    *,
    channels: int = 3,
    height: int = 32,
    width: int = 32,
    registry: GeneratorRegistry | None = None,
) -> nn.Module:
    """Build the raw generator ``G`` (output shape == input shape).

    ``name`` is a registered name (case-insensitive; see :func:`generator_names`) or an
    import string ``"package.module:factory"``. Unknown names raise
    :class:`~nfdeploy.errors.NfdeployError` listing the known ones.
    """
    reg = default_registry if registry is None else registry
    return reg.build(name, channels=channels, height=height, width=width)


def register_generator(
    name: str, *, registry: GeneratorRegistry | None = None
) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory(*, channels, height, width)`` under ``name``.

    Registers into :data:`default_registry` unless ``registry`` is given. A name that is
    already registered (in any letter case) raises :class:`~nfdeploy.errors.NfdeployError`.
    """
    reg = default_registry if registry is None else registry
    return reg.register(name)


def generator_names(*, registry: GeneratorRegistry | None = None) -> list[str]:
    """Registered generator names (built-ins first, in the paper's order)."""
    reg = default_registry if registry is None else registry
    return reg.names()
