"""Kubernetes kinds: what a module reconciles, owns and reads."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Scope(enum.Enum):
    """Whether objects of a kind live in a namespace or at cluster scope."""

    NAMESPACED = "Namespaced"
    CLUSTER = "Cluster"


@dataclass(frozen=True)
class Kind:
    """A Kubernetes resource kind: group, version, kind, plural and scope.

    Take built-in kinds from :mod:`bosun.kinds`; declare a custom resource's
    with :func:`custom_kind`, which derives the plural as kube-rs's
    ``#[derive(CustomResource)]`` does, so a Python module declares the same
    kind as its Rust twin.
    """

    group: str
    version: str
    kind: str
    plural: str
    scope: Scope = Scope.NAMESPACED

    @property
    def api_version(self) -> str:
        """``group/version``, or just ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def is_kind_of(self, obj: object) -> bool:
        """True when the JSON object ``obj`` is of this kind."""
        return (
            isinstance(obj, dict)
            and obj.get("apiVersion") == self.api_version
            and obj.get("kind") == self.kind
        )

    def __str__(self) -> str:
        return f"{self.kind}.{self.api_version}"


def custom_kind(
    group: str,
    version: str,
    kind: str,
    *,
    scope: Scope = Scope.NAMESPACED,
    plural: str | None = None,
) -> Kind:
    """A custom resource's kind, with the plural derived from ``kind`` unless given.

    The host resolves kinds through API discovery and never trusts the
    plural a module declares; it is derived here only so that `bosun
    inspect` shows what the CRD most likely calls it.
    """
    return Kind(group, version, kind, plural or plural_of(kind), scope)


def plural_of(kind: str) -> str:
    """The plural kube-rs derives for ``kind`` (kube-derive's ``to_plural``)."""
    word = kind.lower()
    if word in ("endpoints", "endpointslices"):
        return word
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"
