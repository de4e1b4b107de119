"""What a mode says of the parts it does not have, so that a wing writes only what it does.

A mode's backend (`deploy.backends.Backend`) answers every question status, bench, the agent and
trace ask; a mode without flows, a controller or tools of its own answers as here.  Kernel mode
inherits all of it; ovs mode none.
"""

from __future__ import annotations

from ovsvx.errors import UsageError
from ovsvx.model.topology import Mode
from ovsvx.model.traffic import Traffic


class BackendDefaults:
    """The answers of a mode with nothing beyond netlink: no details, flows or settings to show, the
    host's own tools, netlink's events as its only change feed, and no controller."""

    name: Mode

    def details(self) -> dict[str, str]:
        return {}

    def flow_traffic(self) -> dict[str, Traffic]:
        """No flows, so nothing matched."""
        return {}

    def tool_env(self) -> dict[str, str] | None:
        return None  # the host's own iproute2 and bridge tools

    def change_feed(self) -> list[str] | None:
        return None  # netlink's events say it all

    def settings_figures(self) -> dict[str, str]:
        return {}

    def stop_control(self) -> None:
        raise UsageError(f"{self.name} mode has no controller to stop")

    def start_control(self) -> None:
        raise UsageError(f"{self.name} mode has no controller to start")
