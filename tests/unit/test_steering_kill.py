"""The user's steering program (backend steering) ends with its task: cancel, the task's end or
the steering service stopping all close the task's optimiser driver, which kills the run."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from gridhpo.steering import optimisers
from gridhpo.steering.driver import OptimiserDriver
from gridhpo.steering.space import parse_space


def alive(pid: int) -> bool:
    """A process that has not exited (a zombie waiting for its parent has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


def test_closing_the_driver_kills_the_steering_and_its_children(tmp_path: Path) -> None:
    # a steering that would run for minutes, with a child of its own (its process group)
    command = (f"sleep 300 & echo $! > {tmp_path}/child; echo $$ > {tmp_path}/shell; wait; "
               "echo '[{\"x\": 0.5}]' > %OUT")
    opt = optimisers.get("steering")(parse_space({"x": {"type": "float", "low": 0, "high": 1}}),
                                     options={"command": command})
    driver = OptimiserDriver(opt, ahead=1)
    assert driver.threaded  # the steering runs off the steering's event path
    assert wait_for(lambda: (tmp_path / "child").exists() and (tmp_path / "shell").exists())
    assert wait_for(lambda: (tmp_path / "child").read_text().strip() != "")
    pids = [int((tmp_path / name).read_text()) for name in ("shell", "child")]
    assert all(alive(pid) for pid in pids)
    try:
        driver.close()
        assert wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10.0), pids
    finally:
        for pid in pids:  # a failing run leaves nothing behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: driver.stopped, timeout=10.0)
    assert driver.error is None  # a task that ended is not a steering failure
    assert driver.take(1) == []
