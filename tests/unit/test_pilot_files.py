"""What a pilot reads from an evaluation and keeps of it: the attempt settings, output.json,
stderr tails, work directories, the evaluation's process tree (issue 12, items 5-8, 13)."""
from __future__ import annotations

import json
import os
import sys
import tracemalloc
from fractions import Fraction
from pathlib import Path

import pytest

from gridhpo.errors import ConfigError, MessageError
from gridhpo.evaluation.outputs import (
    MAX_DEPTH,
    MAX_EXTRA_BYTES,
    MetricsTail,
    OutputError,
    Rate,
    bounded_extra,
    parse_json,
    read_output,
    read_regular,
    thin,
)
from gridhpo.evaluation.runtimes._base import Job
from gridhpo.evaluation.runtimes.process import ProcessRuntime, tail
from gridhpo.evaluation.settings import AttemptSettings
from gridhpo.evaluation.workdirs import Workdirs, parse_size
from gridhpo.steering.taskfile import Evaluation, parse_task
from tests.helpers import process_ended, until


def test_attempt_settings_take_zero_as_zero_and_defaults_from_the_task_file() -> None:
    s = AttemptSettings.of({"grace": 0, "heartbeat": 0.5, "timeout": None}, {"metric": "acc"})
    assert (s.grace, s.heartbeat, s.timeout, s.metric) == (0.0, 0.5, None, "acc")
    d = AttemptSettings.of({}, {})
    assert (d.grace, d.heartbeat, d.timeout, d.metric) == (Evaluation.grace, Evaluation.heartbeat, None, "loss")


@pytest.mark.parametrize(("evaluation", "message"), [
    ({"heartbeat": 0}, "evaluation.heartbeat: 0 is not a number of seconds above 0"),
    ({"grace": -1}, "evaluation.grace: -1 is not a number of seconds of 0 or more"),
    ({"timeout": 0}, "evaluation.timeout: 0 is not a number of seconds above 0"),
    ({"grace": float("inf")}, "evaluation.grace: inf"),
    ({"heartbeat": "10"}, "evaluation.heartbeat: '10'"),
    ({"grace": True}, "evaluation.grace: True"),
])
def test_attempt_settings_out_of_range_are_refused(evaluation: dict[str, object], message: str) -> None:
    with pytest.raises(MessageError, match=message):
        AttemptSettings.of(evaluation, {})


@pytest.mark.parametrize(("evaluation", "message"), [
    ({"heartbeat": 0}, "evaluation.heartbeat: must be more than 0 seconds"),
    ({"timeout": 0}, "evaluation.timeout: must be more than 0 seconds"),
])
def test_the_task_file_refuses_a_zero_heartbeat_or_timeout(evaluation: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_task({"name": "t", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
                    "evaluation": {"command": "true", **evaluation}})
    grace0 = parse_task({"name": "t", "search_space": {"x": {"type": "float", "low": 0, "high": 1}},
                         "evaluation": {"command": "true", "grace": 0}})
    assert grace0.evaluation.grace == 0.0


def test_output_json_is_read_only_as_a_regular_file_of_the_work_directory(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside.json"
    outside.write_text('{"loss": 1}')
    assert read_output(work) is None
    (work / "output.json").symlink_to(outside)
    with pytest.raises(OutputError, match="symbolic link"):
        read_output(work)
    (work / "output.json").unlink()
    os.mkfifo(work / "output.json")
    with pytest.raises(OutputError, match="not a regular file"):
        read_output(work)  # returns at once: O_NONBLOCK
    (work / "output.json").unlink()
    os.link(outside, work / "output.json")
    with pytest.raises(OutputError, match="2 hard links"):
        read_output(work)
    (work / "output.json").unlink()
    (work / "output.json").write_text('{"loss": 1}')
    # the work directory swapped for a link to elsewhere
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "output.json").write_text('{"loss": 2}')
    (tmp_path / "swapped").symlink_to(tmp_path / "elsewhere")
    assert read_output(work) == {"loss": 1}
    with pytest.raises(OutputError, match="resolves outside the work directory"):
        read_regular(work, "../swapped/output.json", 1 << 20)


def test_json_is_parsed_with_bounded_depth_and_numbers() -> None:
    with pytest.raises(OutputError, match=f"nested more than {MAX_DEPTH} levels"):
        parse_json("[" * 200_000 + "]" * 200_000, "output.json")
    with pytest.raises(OutputError, match=f"nested more than {MAX_DEPTH} levels"):
        parse_json("[" * 100 + "]" * 100, "output.json")
    assert parse_json('{"a": [[1]], "s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', "x")["a"] == [[1]]
    with pytest.raises(OutputError, match="not valid JSON"):
        parse_json("1" * 5000, "output.json")  # beyond Python's integer digit limit


def test_extra_values_are_bounded_with_notes() -> None:
    extra, notes = bounded_extra({"blob": "b" * 2_000_000, "k" * 1000: 1, "big": 10 ** 30, "huge": 10 ** 400,
                                  "fine": 7})
    assert extra["fine"] == 7 and extra["big"] == float(10 ** 30) and extra["huge"] is None
    assert len(extra["blob"]) == 65536 and "k" * 256 + "..." in extra
    assert len(json.dumps(extra)) <= MAX_EXTRA_BYTES
    assert len(notes) == 3
    # an in-process objective's return value need not be JSON
    odd, notes = bounded_extra({"frac": Fraction(1, 4), "obj": object(), "pair": (1, 2)})
    assert odd["frac"] == 0.25 and odd["obj"].startswith("<object") and odd["pair"] == [1, 2]
    assert notes == ["obj: a object, not JSON: kept as text"]
    json.dumps(odd)
    many, notes = bounded_extra({f"v{i}": "x" * 60_000 for i in range(50)})
    assert len(json.dumps(many)) <= MAX_EXTRA_BYTES and "dropped" in notes[-1]


def test_metrics_reads_are_bounded_and_skip_overlong_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"a": 1}\n' + "x" * 200_000 + '\n{"b": 2}\n' + "{}\n" * 300_000)
    m = MetricsTail(tmp_path)
    first = m.read_new()
    assert first[0] == (0, '{"a": 1}') and first[1] == (1, '{"b": 2}') and m.skipped == 1
    assert m.more, "one read stops at its limit"
    lines = list(first)
    while batch := m.read_new():
        lines += batch
    assert len(lines) == 2 + 300_000 and lines[-1][0] == 300_001


def test_a_metrics_flood_is_thinned_to_the_rate_keeping_the_latest_line() -> None:
    now = [0.0]
    rate = Rate(per_second=10, burst=20, clock=lambda: now[0])
    assert rate.allow(100) == 20 and rate.allow(5) == 0
    now[0] += 1.0
    assert rate.allow(100) == 10 and rate.allow(3) == 0
    now[0] += 10.0
    assert rate.allow(3) == 3, "a trickle goes through whole"
    lines = [(i, str(i)) for i in range(1000)]
    kept = thin(lines, 10)
    assert len(kept) == 10 and kept[-1] == (999, "999") and kept == sorted(kept)
    assert thin(lines, 0) == [(999, "999")], "the latest line always goes"
    assert thin(lines[:5], 10) == lines[:5]


def test_stderr_tail_reads_only_the_end_of_a_huge_file(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    with log.open("wb") as f:
        f.truncate(1 << 30)  # a sparse gigabyte without a newline
        f.seek(0, os.SEEK_END)
        f.write(b"\nlast line\n")
    tracemalloc.start()
    try:
        text = tail(log, 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert text.endswith("last line\n")
    assert peak < 4 << 20, f"{peak} bytes to read a tail"


def test_failed_work_directories_are_kept_within_count_and_size(tmp_path: Path) -> None:
    dirs = Workdirs(tmp_path, "p", "local", keep_failed=3, keep_failed_bytes=10 << 20)
    jobs = []
    for i in range(5):
        job = Job(workdir=tmp_path / "task-1" / f"point-{i}-attempt-1", command="true")
        job.workdir.mkdir(parents=True)
        (job.workdir / "data").write_bytes(os.urandom(4 << 20))
        jobs.append(job)
        dirs.ended(job, finished=False, keep=False)
    # 3 by count, but 3 x 4 MiB is over 10 MiB: the newest two
    assert sorted(p.name for p in (tmp_path / "task-1").iterdir()) == ["point-3-attempt-1", "point-4-attempt-1"]
    # a pilot started again over the same root counts what is there
    again = Workdirs(tmp_path, "p", "local", keep_failed=1)
    job = Job(workdir=tmp_path / "task-1" / "point-9-attempt-1", command="true")
    job.workdir.mkdir()
    again.ended(job, finished=False, keep=False)
    assert [p.name for p in (tmp_path / "task-1").iterdir()] == ["point-9-attempt-1"]
    dirs.ended(job, finished=True, keep=False)
    assert not job.workdir.exists()


@pytest.mark.parametrize(("text", "size"), [("1024", 1024), ("500M", 500 << 20), ("2G", 2 << 30), ("1GiB", 1 << 30),
                                            ("3k", 3 << 10)])
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text, "--keep-failed-size") == size


def test_a_bad_size_is_refused_with_its_option() -> None:
    with pytest.raises(ConfigError, match="--keep-failed-size: 'lots' is not a size"):
        parse_size("lots", "--keep-failed-size")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_stopping_an_evaluation_ends_a_child_that_left_its_session(tmp_path: Path) -> None:
    """The evaluation runs on; its setsid child (without the inherited marker: only the scans
    find it) must end when the pilot stops the evaluation."""
    rt = ProcessRuntime()
    pidfile = tmp_path / "child.pid"
    (tmp_path / "spawn.py").write_text(
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True, env={})\n"
        f"open({str(pidfile)!r}, 'w').write(str(c.pid))\n"
        "time.sleep(600)\n")
    job = Job(workdir=tmp_path, command=f"{sys.executable} spawn.py")
    handle = rt.start(job)
    try:
        until(lambda: pidfile.exists() and pidfile.read_text(), 30, "the child to start")
        child = int(pidfile.read_text())
        until(lambda: (handle.poll(), child in handle.tree.known)[1], 30,  # type: ignore[attr-defined]
              "a scan to record the child")
        handle.stop(5)
        until(lambda: process_ended(child), 30, "the child to end")
    finally:
        rt.close()
        if pidfile.exists() and pidfile.read_text() and not process_ended(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), 9)




def test_the_notes_on_what_was_cut_from_a_result_stay_small() -> None:
    """The attack: every long key cut adds a note naming its whole path; 29 levels of 300-character
    keys around thousands of long keys made an 8 MB output.json cost 700 MB of notes. At most 50
    notes of 300 characters are kept, and the result still says what was cut."""
    inner: dict[str, object] = {f"k{i:05d}" + "x" * 300: 0 for i in range(2000)}
    value: dict[str, object] = inner
    for level in range(29):
        value = {f"L{level:02d}" + "y" * 300: value}
    extra, notes = bounded_extra({"big": value})
    assert len(notes) == 51 and notes[-1] == "further notes left out"
    assert all(len(n) <= 303 for n in notes) and "cut to 256" in notes[0]
    assert list(extra) == ["big"]
