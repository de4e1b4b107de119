"""What a running agent says about itself, in a file others read: its last pass, its reloads, its crashes.

The agent rewrites its report after every pass (one small JSON file under
ovsvx's run folder, root's), so that

- `ovsvx status` shows when the last pass ran, how it ended and how long it took;
- `ovsvx reload` (systemd's ExecReload) knows when the agent has taken the
  stored topology again, and whether it refused it;
- an agent that starts again soon after one that never stopped cleanly (killed
  by systemd's watchdog, or by a crash) knows it is in a crash loop, and waits
  longer each time before its first pass (`restart_delay`), instead of
  starting every second for ever.  The folder is a tmpfs: a boot starts afresh.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ovsvx.files import replace_file
from ovsvx.host import record

#: A run that ends this soon after it started, without stopping cleanly, is a crash of a loop.
CRASH_WINDOW_S = 60.0
#: Crashes in a row that start again at once (a kill, one watchdog timeout); after them, the wait doubles.
FREE_RESTARTS = 2
RESTART_DELAY_MAX_S = 60.0


@dataclass(frozen=True)
class AgentReport:
    name: str  # "host1", "reflector 10.33.30.2"
    pid: int
    started: float  # wall clock, seconds
    passes: int = 0
    last_at: float = 0.0  # when the last pass ended (wall clock); 0: no pass yet
    last_ok: bool = False
    last_seconds: float = 0.0
    last_error: str = ""
    reloads: int = 0  # reload requests taken (SIGHUP), refused ones too
    reload_refused: str = ""  # why the last reload was refused; "" when it was taken
    reloaded_after: int = 0  # the passes done when the last reload was taken: the next one applies it
    crashes: int = 0  # the runs before this one that crashed in a row
    stopped: bool = False  # ended cleanly (SIGTERM)

    def describe(self) -> str:
        """One line for `status`: the last pass, and what the agent went through."""
        if not self.last_at:
            return f"no pass yet (started {time.strftime('%H:%M:%S', time.localtime(self.started))})"
        said = "converged" if self.last_ok else f"failed: {self.last_error}"
        at = time.strftime("%H:%M:%S", time.localtime(self.last_at))
        extra = f", {self.reloads} reload(s)" if self.reloads else ""
        extra += f", after {self.crashes} crash(es)" if self.crashes else ""
        return f"last pass {at}, {said} in {self.last_seconds:.2f} s ({self.passes} pass(es){extra})"


def path(name: str) -> Path:
    return record.STATE_DIR / f"agent-{name.replace(' ', '-')}.json"


def load(name: str) -> AgentReport | None:
    """The report of the agent called `name`, or None when none was written (or it cannot be read)."""
    try:
        data = json.loads(path(name).read_text())
        return AgentReport(**data)
    except (OSError, ValueError, TypeError):
        return None


def save(report: AgentReport) -> None:
    record.STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    replace_file(path(report.name), json.dumps(asdict(report)) + "\n", 0o644)


def starting(name: str, now: float) -> AgentReport:
    """A new run's report, counting the crashes before it: the runs that ended without stopping cleanly
    within CRASH_WINDOW_S of their start."""
    before = load(name)
    crashed = before is not None and not before.stopped and now - before.started < CRASH_WINDOW_S
    crashes = before.crashes + 1 if crashed and before is not None else 0
    return AgentReport(name, os.getpid(), now, crashes=crashes)


def restart_delay(crashes: int) -> float:
    """How long a run waits before its first pass after `crashes` crashes in a row: nothing for the
    first FREE_RESTARTS, then 2, 4, 8 ... up to RESTART_DELAY_MAX_S seconds."""
    if crashes <= FREE_RESTARTS:
        return 0.0
    return min(2.0 ** (crashes - FREE_RESTARTS), RESTART_DELAY_MAX_S)


def passed(report: AgentReport, ok: bool, seconds: float, error: str, now: float) -> AgentReport:
    return replace(report, passes=report.passes + 1, last_at=now, last_ok=ok, last_seconds=seconds, last_error=error)
