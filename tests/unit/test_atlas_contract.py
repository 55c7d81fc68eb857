"""The ATLAS evaluation contract's pieces (docs/atlas.md, "The evaluation contract"): the task
file's fields and their one-line errors, the files a pilot writes and keeps (safely: an
evaluation is untrusted), the checkPointToSave staging, phpo's "very large loss"."""
from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from gridhpo.bookkeeping.records import PointUpdate
from gridhpo.checkpoints import open_store
from gridhpo.checkpoints.archive import CheckpointTooLargeError
from gridhpo.checkpoints.artifacts import download
from gridhpo.errors import CheckpointError, ConfigError
from gridhpo.evaluation import artifacts, savelist
from gridhpo.evaluation.runtimes._base import Job, task_dirs
from gridhpo.evaluation.runtimes.docker import container_options
from gridhpo.evaluation.settings import AttemptSettings
from gridhpo.evaluation.workdirs import Workdirs
from gridhpo.protocol import Event, PointMessage, PointObjective
from gridhpo.protocol.evaluation import EvaluationSpec, FilesSpec
from gridhpo.steering import schedulers
from gridhpo.steering.lifecycle import TaskLifecycle
from gridhpo.steering.lifecycle.effects import Tell
from gridhpo.steering.lifecycle.events import AttemptsCreated, PointsCreated, Received, Suggested
from gridhpo.steering.optimisers import Suggestion
from gridhpo.steering.taskfile import parse_task


def task(evaluation: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "t", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
            "evaluation": {"command": "true", **evaluation}, **top}


@pytest.mark.parametrize(("evaluation", "message"), [
    ({"files": {"inptu": "p.json"}}, "evaluation.files: unknown key 'inptu'; did you mean 'input'"),
    ({"files": {"output": "out/r.json"}}, "evaluation.files.output: 'out/r.json' is not a file name of the work "
                                          "directory (one name, no folder)"),
    ({"files": {"input": "gridhpo.json"}}, "'gridhpo.json' is not a file name of the work directory "
                                           "(gridhpo.json is the pilot's own)"),
    ({"files": {"meta": ".hidden"}}, "the pilot's own files start with '.'"),
    ({"files": {"metrics": "input.json"}}, "evaluation.files.metrics: 'input.json' is not a name of its own "
                                           "(it is input's too)"),
    ({"checkpoint": {"save": ["model", "../etc"]}}, "evaluation.checkpoint.save: '../etc' is not a path inside "
                                                    "the work directory"),
    ({"checkpoint": {"save": "model"}}, "evaluation.checkpoint.save: 'model' is not a list of at most 100"),
    ({"checkpoint": {"load": "ckpt.tgz"}}, "evaluation.checkpoint.load: 'ckpt.tgz' is not usable without save"),
    ({"training_data": "files.txt"}, "evaluation.training_data: 'files.txt' is not a list of at most 10000"),
    ({"training_data": ["x" * 300] * 1000}, "at most 262144 bytes of JSON (every point message carries it)"),
    ({"points_per_job": 0}, "evaluation.points_per_job: 0 is not an integer of 1 or more"),
])
def test_bad_contract_fields_are_one_line_errors(evaluation: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_task(task(evaluation), "task.yaml")
    assert str(err.value).startswith("task.yaml: ") and message in str(err.value), err.value
    assert "\n" not in str(err.value)


def test_the_save_list_caps_at_100_mb_unless_told() -> None:
    assert parse_task(task({"checkpoint": {"save": ["m"]}}), "t").evaluation.checkpoint.max_size == 100_000_000
    assert parse_task(task({"checkpoint": {"save": ["m"], "max_size": 5}}), "t").evaluation.checkpoint.max_size == 5
    assert parse_task(task({}), "t").evaluation.checkpoint.max_size == 1 << 30  # checkpoint/: as before
    with pytest.raises(ConfigError, match=r"objective.exhausted_value: inf is not a number"):
        parse_task(task({}, objective={"exhausted_value": float("inf")}), "t")


def message(evaluation: EvaluationSpec, attempt: int = 1) -> PointMessage:
    return PointMessage(task_id=3, task_name="atlas", point_id=30, number=4, attempt=attempt, params={"x": 0.5},
                        evaluation=evaluation, objective=PointObjective())


def test_the_pilot_writes_the_point_and_the_training_list_under_the_tasks_names(tmp_path: Path) -> None:
    ev = EvaluationSpec(command="true", files=FilesSpec(input="params.json", output="result.json",
                                                         training_data="ds.json"),
                        training_data=["/data/a.h5", "b.h5"])
    msg = message(ev)
    job = Workdirs(tmp_path, "p", "local").prepare(msg, AttemptSettings.typed(ev, msg.objective))
    assert json.loads((job.workdir / "params.json").read_text()) == {"x": 0.5}
    assert json.loads((job.workdir / "ds.json").read_text()) == ["/data/a.h5", "b.h5"]  # as runHPO writes it
    assert not (job.workdir / "input.json").exists()
    paths = json.loads((job.workdir / "gridhpo.json").read_text())["paths"]
    assert (paths["input"], paths["output"], paths["training_data"]) == ("params.json", "result.json", "ds.json")
    plain = Workdirs(tmp_path / "2", "p", "local").prepare(message(EvaluationSpec(command="true")),
                                                           AttemptSettings.typed(ev, msg.objective))
    assert not (plain.workdir / "input_ds.json").exists()  # no list given: no file


def kept(tmp_path: Path, workdir: Path, files: FilesSpec, attempt: int = 1) -> dict[str, bytes]:
    store = open_store(f"file://{tmp_path / 'store'}")
    artifacts.collect(store, message(EvaluationSpec(command="true", files=files), attempt), workdir)
    out = tmp_path / f"out-{attempt}"
    return {str(p.relative_to(out)): p.read_bytes() for p in download(store, 3, "atlas", out)}


def test_meta_and_metrics_are_kept_per_attempt(tmp_path: Path) -> None:
    work = tmp_path / "w"
    (work / "mlruns").mkdir(parents=True)
    (work / "mlruns" / "m.txt").write_text("loss 1")
    (work / "meta.json").write_text('{"gpu": "A100"}')
    got = kept(tmp_path, work, FilesSpec(meta="meta.json", metrics="mlruns"))
    assert got["point-4/attempt-1/meta.json"] == b'{"gpu": "A100"}'
    # a metrics folder is kept as a tarball, as runHPO tars it
    with tarfile.open(tmp_path / "out-1" / "point-4" / "attempt-1" / "mlruns.tgz") as tar:
        assert tar.extractfile("mlruns/m.txt").read() == b"loss 1"  # type: ignore[union-attr]
    (work / "meta.json").write_text('{"gpu": "H100"}')
    again = kept(tmp_path, work, FilesSpec(meta="meta.json", metrics="mlruns"), attempt=2)
    assert again["point-4/attempt-1/meta.json"] == b'{"gpu": "A100"}'  # each attempt its own
    assert again["point-4/attempt-2/meta.json"] == b'{"gpu": "H100"}'


@pytest.mark.parametrize("make", ["symlink", "hardlink", "fifo", "too large", "not an object"])
def test_a_hostile_or_bad_metadata_file_is_not_kept(tmp_path: Path, make: str) -> None:
    """An evaluation may try to make the pilot upload a file it cannot read itself (a link to
    the pilot's secrets) or block it (a FIFO): the file is left out, the pilot goes on."""
    work = tmp_path / "w"
    work.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_text('{"token": "s3cr3t"}')
    meta = work / "meta.json"
    if make == "symlink":
        meta.symlink_to(secret)
    elif make == "hardlink":
        os.link(secret, meta)
    elif make == "fifo":
        os.mkfifo(meta)
    elif make == "too large":
        meta.write_text(json.dumps({"x": "a" * (1 << 20)}))
    else:
        meta.write_text("[1, 2]")
    assert kept(tmp_path, work, FilesSpec(meta="meta.json")) == {}


def test_save_list_staging_and_restore(tmp_path: Path) -> None:
    work = tmp_path / "w"
    (work / "model").mkdir(parents=True)
    (work / "model" / "w.bin").write_bytes(b"1")
    (work / "log.txt").write_text("epoch 1\n")
    before = savelist.paths_fingerprint(work, ["model", "log.txt", "missing"])
    # a file replaced by a rename (Keras' way of saving) is a change
    (work / "model" / "w.tmp").write_bytes(b"2")
    os.replace(work / "model" / "w.tmp", work / "model" / "w.bin")
    assert savelist.paths_fingerprint(work, ["model", "log.txt"]) != before
    staged = savelist.stage(work, ["model", "log.txt", "missing"])
    assert sorted(str(p.relative_to(staged)) for p in staged.rglob("*")) == ["log.txt", "model", "model/w.bin"]
    with pytest.raises(CheckpointTooLargeError, match=r"over evaluation\.checkpoint\.max_size"):
        savelist.check_size(savelist.paths_fingerprint(work, ["model", "log.txt"]), 3)
    # restored: at the saved names (never over a file the work directory has), or as the tarball
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "log.txt").write_text("the pilot's")
    savelist.install(fresh, staged, None)
    assert (fresh / "model" / "w.bin").read_bytes() == b"2" and (fresh / "log.txt").read_text() == "the pilot's"
    staged = savelist.stage(work, ["model", "log.txt"])
    savelist.install(fresh, staged, "ckpt.tgz")
    with tarfile.open(fresh / "ckpt.tgz") as tar:
        assert sorted(tar.getnames()) == ["log.txt", "model", "model/w.bin"]


def test_a_file_renamed_away_while_its_folder_is_staged_does_not_stop_the_pilot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluation saves ``state.json.tmp`` and renames it over ``state.json`` between
    copytree's listing of the folder and its copy of that file: once a pilot crash (shutil.Error),
    now a change that postpones the archive (the fingerprint differs) and nothing else."""
    work = tmp_path / "w"
    (work / "model").mkdir(parents=True)
    (work / "model" / "state.json").write_text("1")
    (work / "model" / "state.json.tmp").write_text("2")
    listing = os.scandir

    class Listed:
        def __init__(self, path: Any) -> None:
            self.entries = list(listing(path))
            if Path(path).name == "model" and (work / "model" / "state.json.tmp").exists():
                os.replace(work / "model" / "state.json.tmp", work / "model" / "state.json")

        def __enter__(self) -> list[os.DirEntry[str]]:
            return self.entries

        def __exit__(self, *exc: object) -> None:
            return None

    before = savelist.paths_fingerprint(work, ["model"])
    monkeypatch.setattr(os, "scandir", Listed)
    staged = savelist.stage(work, ["model"])
    monkeypatch.undo()
    assert sorted(str(p.relative_to(staged)) for p in staged.rglob("*")) == ["model", "model/state.json"]
    assert savelist.paths_fingerprint(work, ["model"]) != before, "the change vetoes the archive"


@pytest.mark.parametrize("where", ["model/pipe", "pipe"], ids=["in-a-folder", "listed"])
def test_a_named_pipe_in_the_save_list_is_a_checkpoint_error_not_a_pilot_crash(tmp_path: Path, where: str) -> None:
    """A hostile evaluation puts a FIFO where the pilot copies its checkpoint from (shutil refuses
    to copy one: reading it would block): the save fails alone, in one line naming the entry, and
    the pilot's checkpointing logs it and tries again (it caught CheckpointError only)."""
    work = tmp_path / "w"
    (work / "model").mkdir(parents=True)
    (work / "model" / "w.bin").write_bytes(b"1")
    os.mkfifo(work / where)
    listed = where.split("/")[0]
    with pytest.raises(CheckpointError) as err:
        savelist.stage(work, [listed])
    msg = str(err.value)
    assert msg.startswith(f"evaluation.checkpoint.save: {listed} could not be copied: ") and "pipe" in msg
    assert "\n" not in msg


def test_a_point_whose_attempts_are_all_used_gets_the_very_large_loss() -> None:
    spec = parse_task(task({"heartbeat": 1, "lost_after": 5}, budget={"max_attempts": 2},
                           objective={"exhausted_value": 1e30, "failure_value": 7.0}), "t")
    core = TaskLifecycle(7, "t", spec, "q", schedulers.create(spec))
    core.apply(Suggested((Suggestion(0, {"x": 0.1}),), 4))
    core.apply(PointsCreated((1,), 0.0))
    effects: list[Any] = []
    for attempt in (1, 2):
        core.apply(Received((Event("started", 7, 1, attempt, "p"),), float(attempt)))
        core.apply(AttemptsCreated({(1, attempt): 10 + attempt}))
        effects = core.apply(Received((Event("interrupted", 7, 1, attempt, "p",
                                             data={"reason": "walltime", "cause": "walltime"}),), attempt + 0.5))
    ended = [e for e in effects if isinstance(e, PointUpdate)]
    assert [(e.state, e.value) for e in ended] == [("failed", 1e30)]
    assert Tell(0, 1e30) in effects  # told as a result, not as a failure (failure_value 7)


def test_containers_get_the_task_folder_read_only(tmp_path: Path) -> None:
    """(Podman runs it for real in tests/integration/test_task_dir_mount.py.)"""
    task_dir, work = tmp_path / "task", tmp_path / "work"
    task_dir.mkdir()
    work.mkdir()
    volumes = container_options(Job(workdir=work, command="true", image="x", source_dir=str(task_dir)), {})["volumes"]
    assert volumes == {str(work): {"bind": str(work), "mode": "rw"},
                       str(task_dir): {"bind": str(task_dir), "mode": "ro"}}
    # a folder this machine lacks, or one holding the work directory, is not mounted
    for src in (str(tmp_path / "elsewhere"), str(tmp_path)):
        assert task_dirs(Job(workdir=work, command="true", image="x", source_dir=src)) == []


def test_after_a_restart_the_very_large_loss_is_told_again() -> None:
    """The steering rebuilds its optimiser from the recorded points: a failed point that carries
    the very large loss is a result again, a plain failure stays a failure."""
    from types import SimpleNamespace

    from gridhpo.steering.state import _restore

    spec = parse_task(task({}, objective={"exhausted_value": 1e30}), "t")
    points = [SimpleNamespace(id=1, number=0, params={"x": 0.1}, state="failed", value=1e30, attempt=3,
                              dispatched_at=0.0),
              SimpleNamespace(id=2, number=1, params={"x": 0.2}, state="failed", value=None, attempt=1,
                              dispatched_at=0.0)]
    trials, _, _, failed = _restore(spec, points)
    assert [(t.state, t.value) for t in trials] == [("done", 1e30), ("failed", None)] and failed == 2


def test_the_load_tarball_is_compressed_as_its_name_says() -> None:
    assert [savelist.tar_mode(n) for n in ("c.tgz", "c.tar.gz", "c.tar", "ckpt", "c.tar.xz")] == [
        "w:gz", "w:gz", "w", "w", "w:xz"]


def test_apptainer_binds_the_task_folder_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Apptainer is not packaged here: its command line is what is checked."""
    from gridhpo.evaluation.runtimes.apptainer import ApptainerRuntime

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "apptainer").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "apptainer").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    task_dir, work = tmp_path / "task", tmp_path / "work"
    task_dir.mkdir()
    work.mkdir()
    argv = ApptainerRuntime().argv(Job(workdir=work, command="true", image="img.sif", source_dir=str(task_dir)))
    assert argv[argv.index("--containall"):argv.index("--pwd")] == [
        "--containall", "--bind", f"{work}:{work}"]
    assert argv[argv.index("--pwd") + 2:argv.index("--pwd") + 4] == ["--bind", f"{task_dir}:{task_dir}:ro"]
