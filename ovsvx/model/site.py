"""Where one host of the topology lives: this machine's own stack, or a lab namespace.

Backends deploy a `Site`; they never ask whether it is a lab.  In a lab, the
host's stack is the namespace ``<prefix><host>`` and its workload namespaces are
``<prefix><ns>``; on a real host both are as the topology names them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovsvx.model.topology import Host


@dataclass(frozen=True)
class Site:
    host: Host
    netns: str | None  # the host's own network stack; None: this machine's
    prefix: str = ""  # prepended to workload namespace names

    def ns(self, name: str) -> str:
        """The real name of workload namespace `name` at this site."""
        return self.prefix + name

    @property
    def is_lab(self) -> bool:
        return self.netns is not None
