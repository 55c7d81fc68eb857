"""Every runtime holds back the same variables (environment.is_secret): the container runtimes
once filtered by a list of names only, so a database URL with its password, or the pilot's
token under another name, reached a container's environment."""
from __future__ import annotations

from pathlib import Path

import pytest

from gridhpo.evaluation import environment
from gridhpo.evaluation.runtimes import Job
from gridhpo.evaluation.runtimes.apptainer import ApptainerRuntime
from gridhpo.evaluation.runtimes.docker import container_options

SECRETS = {"MY_DB": "postgresql://u:hunter2@db/x", "OTHER_NAME": "registered-secret-value-1234",
           "AWS_REGION_KEY": "k", "GRIDHPO_TOKEN": "t"}


@pytest.fixture
def job(tmp_path: Path) -> Job:
    environment.register_secret("registered-secret-value-1234")  # as a pilot registers its token
    return Job(workdir=tmp_path, command="env", image="image.sif", name="j",
               env={"GRIDHPO_POINT": "7", "TASK_OPTION": "fast", **SECRETS})


def test_docker_passes_the_jobs_variables_without_any_secret(job: Job) -> None:
    env = container_options(job, {})["environment"]
    assert env == {"GRIDHPO_POINT": "7", "TASK_OPTION": "fast"}


def test_apptainer_passes_the_jobs_variables_without_any_secret(job: Job, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = ApptainerRuntime()
    monkeypatch.setattr(runtime, "binary", lambda: "apptainer")
    argv = runtime.argv(job)
    passed = [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    assert passed == ["GRIDHPO_POINT=7", "TASK_OPTION=fast"]
