"""What a module declares about itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._kinds import Kind


@dataclass
class Metadata:
    """A module's name and version, the kinds it owns and reads, its
    finalizer and the HTTP origins it reaches.

    The primary kind is the reconciler's ``kind`` attribute, as the Rust
    SDK takes it from ``Reconciler::Object``. The host enforces the
    declaration: a child of an undeclared kind, or a read of one, is an
    error. Chain the builder methods::

        Metadata("cnat", "0.1.0").owns(kinds.Pod).reads(kinds.ConfigMap)
    """

    name: str
    version: str
    owned: list[Kind] = field(default_factory=list)
    read: list[Kind] = field(default_factory=list)
    finalizer_name: str | None = None
    http_origins: list[str] = field(default_factory=list)

    def owns(self, kind: Kind) -> "Metadata":
        """Declares that the module creates children of ``kind``."""
        self.owned.append(_checked(kind))
        return self

    def reads(self, kind: Kind) -> "Metadata":
        """Declares that the module reads ``kind`` through ``Context.get``/``Context.list``."""
        self.read.append(_checked(kind))
        return self

    def finalizer(self, finalizer: str) -> "Metadata":
        """Asks the host to hold ``finalizer`` on every primary object and to
        call the reconciler's ``finalize`` before it goes."""
        self.finalizer_name = finalizer
        return self

    def http_origin(self, origin: str) -> "Metadata":
        """Declares an origin the module sends HTTP requests to,
        ``scheme://host[:port]`` (``http`` or ``https``; a leading ``*.``
        covers subdomains only). Call once per origin. The operator must
        grant each; the host refuses requests anywhere else and adds the
        credentials the grant binds to an origin itself."""
        self.http_origins.append(origin)
        return self


def _checked(kind: object) -> Kind:
    # A string or a dict here would only fail at load time inside the host,
    # with a message far from the mistake.
    if not isinstance(kind, Kind):
        raise TypeError(
            f"expected a bosun Kind (from bosun.kinds or bosun.custom_kind), got {kind!r}"
        )
    return kind
