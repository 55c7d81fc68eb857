"""Per-point overhead of the container runtime (Docker API on Podman) against the plain process.

For each runtime, N rounds of:
  run    start an evaluation that only writes output.json, poll until it has ended, clean up;
  start  from start() until the evaluation has written a file into its bind-mounted work dir;
  stop   stop(grace) of an evaluation that exits on SIGTERM, until its exit code is known.
Medians in milliseconds, and the container/process ratio, measured side by side in one run.

Needs podman, runc and busybox-static (.ci/setup-podman.sh); starts its own Podman service.
    .venv/bin/python benchmarks/runtimes.py [--rounds 15]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridhpo.evaluation.runtimes import Job, Runtime
from gridhpo.evaluation.runtimes.docker import DockerRuntime
from gridhpo.evaluation.runtimes.process import ProcessRuntime, wait
from tests.podman import BUSYBOX_IMAGE, busybox_context, podman_service


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def until(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.002)


def measure(runtime: Runtime, image: str | None, root: Path, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"run": [], "start": [], "stop": []}
    for i in range(rounds):
        wd = root / f"{runtime.name}-{i}"
        wd.mkdir(parents=True)

        def job(command: str, name: str, workdir: Path = wd, i: int = i) -> Job:
            return Job(workdir=workdir, command=command, image=image, env={"GRIDHPO_WORKDIR": str(workdir)},
                       name=f"bench-{name}-{i}")

        def run_one() -> None:
            h = runtime.start(job('echo \'{"status": 0, "loss": 1}\' > output.json', "run"))
            wait(h, 60)
            h.cleanup()

        out["run"].append(timed(run_one))
        t0 = time.perf_counter()
        h = runtime.start(job("trap 'exit 0' TERM; echo up > up.txt; while true; do sleep 0.05; done", "stop"))
        until(wd / "up.txt")
        out["start"].append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        h.stop(10)
        out["stop"].append((time.perf_counter() - t0) * 1000)
        h.cleanup()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gridhpo-bench-") as tmp:
        root = Path(tmp)
        with podman_service(root / "podman") as pm:
            pm.build(BUSYBOX_IMAGE, busybox_context(root / "image"))
            docker = DockerRuntime(base_url=pm.url)
            process = ProcessRuntime()
            try:
                # one warm-up round each: the first container start loads the image layers
                measure(docker, BUSYBOX_IMAGE, root / "warm", 1)
                measure(process, None, root / "warm", 1)
                results = {"process": measure(process, None, root / "p", args.rounds),
                           "docker (podman)": measure(docker, BUSYBOX_IMAGE, root / "d", args.rounds)}
            finally:
                docker.close()
                process.close()
    print(f"per-point overhead, median of {args.rounds} rounds (ms)")
    print(f"{'phase':<8}{'process':>12}{'docker (podman)':>18}{'ratio':>10}")
    for phase, label in (("run", "run"), ("start", "start"), ("stop", "stop")):
        p = statistics.median(results["process"][phase])
        d = statistics.median(results["docker (podman)"][phase])
        print(f"{label:<8}{p:>12.1f}{d:>18.1f}{d / p:>9.1f}x")
    print("run: start + poll to exit + cleanup of a trivial evaluation; start: until it wrote into the mounted "
          "work dir; stop: SIGTERM to exit code")


if __name__ == "__main__":
    main()
