"""The edge of the command line: errors turned into one line and an exit status, and the options and
readings that several commands share.

This is the only place that turns an `OvsvxError` into a message.  It loads nothing that talks to
the machine (no netlink, OVSDB or os-ken), so a command that needs none starts without them.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from ovsvx.cli import render
from ovsvx.errors import OvsvxError, UsageError, quiet_after_interrupt, unexpected
from ovsvx.model import topology
from ovsvx.ovs.switch import TUNNEL_CSUM

out = render.console()
err_console = render.console(stderr=True)

topology_option = click.option(
    "-t",
    "--topology",
    "topology_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Topology TOML file (default: the tutorial's two hosts).",
)
ovs_config_option = click.option(
    "--ovs-config",
    "ovs_config",
    multiple=True,
    metavar="[HOST:]KEY=VALUE",
    help="ovs mode: set OVS's other_config KEY (e.g. pmd-maxsleep=50, host2:pmd-cpu-mask=0x2); repeatable.",
)
tunnel_csum_option = click.option(
    "--tunnel-csum",
    "tunnel_csum",
    default=None,
    type=click.Choice(TUNNEL_CSUM),
    help="ovs mode: the vxlan ports' outer UDP checksum; auto (the default) sends it on the kernel datapath "
    "only (a receiving NIC that checks it spares the kernel checking the inner one).",
)
prefix_option = click.option(
    "--prefix",
    default=None,
    metavar="P",
    help="Lab name prefix for every namespace, so several labs never collide (default: none).",
)
host_option = click.option(
    "--host",
    default=None,
    metavar="HOST",
    help="Act on this machine as that topology host (a real host).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def metrics_option(default: str | None, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--metrics", "metrics_text", default=default, metavar="[ADDR:]PORT", help=help_text)


probes_option = click.option(
    "--probes", is_flag=True, help="Each scrape also runs verify's pings (they send traffic) as gauges."
)


def _unraisable(event: Any) -> None:
    """A Ctrl-C that lands in a finalizer (a pyroute2 event loop being collected) is lost to Python
    anyway: the command goes on to its end, so say nothing of it; anything else is reported as usual."""
    if not isinstance(event.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(event)


def reported(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors into one line on stderr and their exit status: ovsvx's own as they say, any other as
    `unexpected` puts it (OVSVX_DEBUG=1 lets it through with its traceback)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sys.unraisablehook = _unraisable
        try:
            return fn(*args, **kwargs)
        except OvsvxError as err:
            err_console.print(render.error(str(err)), soft_wrap=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            quiet_after_interrupt()
            err_console.print("ovsvx: interrupted")
            sys.exit(130)
        except BrokenPipeError:  # the reader went away (`ovsvx plan | head`): nothing to say to anyone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as err:  # not foreseen: still one line, with where it came from
            if os.environ.get("OVSVX_DEBUG"):
                raise
            failure = unexpected(err)
            err_console.print(render.error(str(failure)), soft_wrap=True)
            sys.exit(failure.exit_code)
        finally:  # the outcome is decided: a Ctrl-C while Python shuts down would only print noise
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return wrapper


def parse_modes(text: str | None) -> dict[str, str]:
    """`--mode kernel` (every host) or `--mode host1=kernel,host2=ovs`."""
    if not text:
        return {}
    if "=" not in text:
        return {"*": text}
    modes = {}
    for part in text.split(","):
        name, sep, mode = part.partition("=")
        if not sep or not name or not mode:
            raise UsageError(f"--mode {topology.shown(text)} is not allowed: MODE or HOST=MODE,HOST=MODE")
        if name.strip() in modes:
            raise UsageError(f"--mode names {name.strip()!r} twice: one mode per host")
        modes[name.strip()] = mode.strip()
    return modes
