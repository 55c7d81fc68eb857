"""The task's folder (evaluation.source_dir, $GRIDHPO_TASK_DIR) inside an evaluation image, on a
real Podman socket: mounted read-only at its own path, as phpo mounts its sandbox, so phpo's
sandbox copy and hpogrid's scripts folder work in a container (they did not: only the work
directory was mounted)."""
from __future__ import annotations

from pathlib import Path

import pytest

from gridhpo.evaluation.runtimes import Job
from gridhpo.evaluation.runtimes.docker import DockerRuntime
from gridhpo.steering.phpo import SANDBOX_COPY
from tests.helpers import until
from tests.podman import BUSYBOX_IMAGE, Podman
from tests.podman import podman as podman  # session fixture

pytestmark = pytest.mark.integration


def test_phpo_sandbox_copy_runs_in_an_image_and_the_task_folder_is_read_only(tmp_path: Path,
                                                                           podman: Podman) -> None:
    task_dir, workdir = tmp_path / "task", tmp_path / "work"
    (task_dir / "conf").mkdir(parents=True)
    workdir.mkdir()
    script = (
        'cp input.json seen.json\n'
        'echo tampered > "$GRIDHPO_TASK_DIR/exec_in_container.sh" 2>/dev/null && echo writable > mount.txt '
        '|| echo read-only > mount.txt\n'
        'echo \'{"status": 0, "loss": 1.5}\' > output.json\n')
    (task_dir / "exec_in_container.sh").write_text(script)
    (task_dir / "conf" / "model.yaml").write_text("layers: 3\n")
    (workdir / "input.json").write_text('{"x": 1}')
    job = Job(workdir=workdir, command=SANDBOX_COPY + "sh ./exec_in_container.sh", image=BUSYBOX_IMAGE,
              source_dir=str(task_dir), env={"GRIDHPO_TASK_DIR": str(task_dir)}, name="task-dir-mount")
    runtime = DockerRuntime(base_url=podman.url)
    try:
        handle = runtime.start(job)
        until(lambda: handle.poll() is not None, 60, "the container to end")
        assert handle.poll() == 0, handle.output_tail(20)
    finally:
        runtime.close()
    # phpo's sandbox reached the work directory, sub-folders included, and never over the pilot's input.json
    assert (workdir / "conf" / "model.yaml").read_text() == "layers: 3\n"
    assert (workdir / "seen.json").read_text() == '{"x": 1}'
    assert (workdir / "output.json").exists()
    # the evaluation cannot change the task's own files
    assert (workdir / "mount.txt").read_text().strip() == "read-only"
    assert (task_dir / "exec_in_container.sh").read_text() == script
