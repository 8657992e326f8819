"""Fault targets into groups: one per tensor, or named groups from ``--group NAME=REGEX``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_weights import FaultTarget


@dataclass(frozen=True)
class Group:
    """Tensors that are faulty together (and kept at nominal voltage together)."""

    name: str
    tensors: tuple[str, ...]
    nodes: tuple[str, ...]  # the Conv/Gemm/MatMul node of each tensor (may be "")

    def layer(self) -> str:
        """A readable label: the node of a one-tensor group, else the first node and a count."""
        first = self.nodes[0] or self.tensors[0]
        return first if len(self.nodes) == 1 else f"{first} +{len(self.nodes) - 1}"


@dataclass(frozen=True)
class GroupRule:
    name: str
    pattern: str  # searched in tensor names, like --tensors


def parse_group_rules(texts: Sequence[str]) -> list[GroupRule]:
    """'NAME=REGEX' strings (from repeated --group) into rules, checked."""
    rules: list[GroupRule] = []
    for text in texts:
        name, sep, pattern = text.partition("=")
        name = name.strip()
        if not sep or not name or not pattern:
            raise NfdeployError(
                f"--group {text!r}: use NAME=REGEX, e.g. --group 'stage1=layer1\\.'."
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            raise NfdeployError(
                f"--group {text!r}: {pattern!r} is not a valid regular expression ({exc})."
            ) from None
        if any(rule.name == name for rule in rules):
            raise NfdeployError(f"--group {text!r}: the group name {name!r} is given twice.")
        rules.append(GroupRule(name, pattern))
    return rules


def make_groups(targets: Sequence[FaultTarget], rules: Sequence[GroupRule]) -> list[Group]:
    """A tensor joins the first rule it matches; unmatched tensors are groups of their own.

    Groups come in the graph order of their first tensor.
    """
    members: dict[str, list[FaultTarget]] = {}
    for target in targets:
        rule = next((r for r in rules if re.search(r.pattern, target.name)), None)
        key = rule.name if rule is not None else target.name
        if rule is None and any(r.name == key for r in rules):
            raise NfdeployError(
                f"--group {key}=...: the group name is also a tensor name outside the group; "
                "choose another name."
            )
        members.setdefault(key, []).append(target)
    for rule in rules:
        if rule.name not in members:
            raise NfdeployError(
                f"--group {rule.name}={rule.pattern}: matches no fault target (or only tensors "
                "an earlier --group took); `nfdeploy inspect MODEL.onnx` lists them."
            )
    return [
        Group(name, tuple(t.name for t in group), tuple(t.node for t in group))
        for name, group in members.items()
    ]
