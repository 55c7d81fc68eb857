"""Segmented HPO (phpo's segmentSpecFile): one task per segment, one submission, one report."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gridhpo.bookkeeping import Repository
from gridhpo.cli import main
from gridhpo.errors import ConfigError
from gridhpo.steering import phpo, segments
from gridhpo.steering.taskfile import parse_task

DATA = Path(__file__).resolve().parents[1] / "data" / "phpo"
SPACE = json.loads((DATA / "search_space_example2.json").read_text())


def options(tmp_path: Path, segs: Any = None, space: Any = None, **changes: Any) -> Path:
    """The public example with the phpo documentation's seg.json and its "python toy.py %SEGMENT_NAME"."""
    (tmp_path / "search_space_example2.json").write_text(json.dumps(SPACE if space is None else space))
    if segs is None:
        shutil.copy(DATA / "seg.json", tmp_path / "seg.json")
    else:
        (tmp_path / "seg.json").write_text(json.dumps(segs))
    raw = json.loads((DATA / "config_dev.json").read_text())
    raw.update(segmentSpecFile="seg.json", evaluationExec="python toy.py %SEGMENT_NAME", **changes)
    path = tmp_path / "config_dev.json"
    path.write_text(json.dumps(raw))
    return path


def conv(path: Path) -> phpo.Conversion:
    return phpo.convert(phpo.load_options(path), str(path), path.parent)


def test_one_task_per_segment(tmp_path: Path) -> None:
    c = conv(options(tmp_path))
    assert [t["name"] for t in c.tasks] == ["config_dev.name_A", "config_dev.name_B"]
    for t, seg in zip(c.tasks, ("name_A", "name_B"), strict=True):
        assert t["evaluation"]["command"].endswith(f"; python toy.py {seg}")
        assert t["evaluation"]["env"] == {"GRIDHPO_SEGMENT": seg, "GRIDHPO_SEGMENTED_TASK": "config_dev"}
        assert t["budget"]["max_points"] == 10  # phpo's maxPoints is per segment
        assert t["optimiser"]["options"]["opt_space"] == SPACE  # the one space, cloned
        parse_task(t, "x")
    # the duplicate category of the cloned space and the Rucio dataset: one warning each
    assert sum("cnn_block_depths_1" in w for w in c.warnings) == 1
    assert sum("trainingDS" in w for w in c.warnings) == 1
    assert all("training_data" not in t["evaluation"] for t in c.tasks)  # no list to give


def test_each_segment_gets_its_own_files_in_input_ds_json(tmp_path: Path) -> None:
    """phpo gives each segment its part of the training dataset: with trainingDS a folder of this
    machine, each segment task's training_data lists its own files there (input_ds.json)."""
    data = tmp_path / "ds"
    data.mkdir()
    for name in ("file_1", "file_2", "file_3"):
        (data / name).write_text(name)
    c = conv(options(tmp_path, trainingDS="ds"))
    lists = [parse_task(t, "x").evaluation.training_data for t in c.tasks]
    assert lists == [[str(data / "file_1"), str(data / "file_3")], [str(data / "file_2")]]
    plain = conv(options(tmp_path, trainingDS=["file_1", "file_2", "file_3"]))
    assert [t["evaluation"]["training_data"] for t in plain.tasks] == [["file_1", "file_3"], ["file_2"]]


def test_a_space_per_segment(tmp_path: Path) -> None:
    a = {"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}}
    b = {"y": {"method": "uniformint", "dimension": {"low": 1, "high": 5}}}
    c = conv(options(tmp_path, space=[a, b]))
    assert [t["optimiser"]["options"]["opt_space"] for t in c.tasks] == [a, b]
    wrapped = [{"model_id": 0, "search_space": a}, {"model_id": 1, "search_space": b}]  # what phpo sends iDDS
    assert [list(t["search_space"]) for t in conv(options(tmp_path, space=wrapped)).tasks] == [["x"], ["y"]]


@pytest.mark.parametrize(("segs", "space", "message"), [
    ({"name": "A"}, None, "seg.json: a segment spec is a non-empty JSON list"),
    ([{"name": "A", "file": ["f"]}], None, "seg.json: [0]: unknown segment key 'file'; did you mean 'files'"),
    ([{"name": "A"}, {"name": "A"}], None, "segment name 'A' is given 2 times"),
    ([{"name": "a b"}], None, "seg.json: [0].name: 'a b' must be letters, digits"),
    ([{"name": "A", "files": "f1"}], None, "seg.json: [0].files: 'f1' is not a list of names"),
    ([{"name": "A"}, {"name": "B"}], [SPACE], "search space is one object (cloned for every segment) or a list of 2"),
    ([{"name": "A"}], [{"model_id": 3, "search_space": SPACE}], "[0].model_id: 3 must be 0"),
])
def test_bad_segment_specs_are_one_line_errors(tmp_path: Path, segs: Any, space: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        conv(options(tmp_path, segs=segs, space=space))
    assert message in str(err.value) and "\n" not in str(err.value), err.value


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_cli_dry_run_prints_one_task_file_per_segment(home: Path, tmp_path: Path) -> None:
    code, out, err = invoke("submit", "--phpo", str(options(tmp_path)), "--dry-run", "--name", "puppet")
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert [d["name"] for d in docs] == ["puppet.name_A", "puppet.name_B"]


def test_one_submission_and_one_report(home: Path, tmp_path: Path) -> None:
    path = options(tmp_path)
    code, out, err = invoke("submit", "--phpo", str(path))
    assert code == 0, err
    ids = [int(line) for line in out.split()]
    assert len(ids) == 2
    repo = Repository(f"sqlite:///{home / 'gridhpo.db'}")
    rows = segments.report(repo, "config_dev")
    assert [(r["segment"], r["id"], r["state"], r["best_point"]) for r in rows] == \
        [("name_A", ids[0], "active", None), ("name_B", ids[1], "active", None)]
    code, out, _ = invoke("segments", "config_dev")
    assert code == 0 and "config_dev.name_A" in out and "config_dev.name_B" in out
    # a second submission of the same names records nothing
    code, out, err = invoke("submit", "--phpo", str(path))
    assert code == 1 and "'config_dev.name_A' is taken: nothing submitted" in err
    assert [t.name for t in repo.tasks()] == ["config_dev.name_A", "config_dev.name_B"]
    code, _, err = invoke("segments", "nothing")
    assert code == 1 and "no segmented task 'nothing'" in err


def test_one_segment_keeps_its_suffix_under_name(home: Path, tmp_path: Path) -> None:
    code, out, err = invoke("submit", "--phpo", str(options(tmp_path, segs=[{"name": "only"}])), "--name", "puppet")
    assert code == 0, err
    repo = Repository(f"sqlite:///{home / 'gridhpo.db'}")
    assert repo.task(int(out)).name == "puppet.only"
    assert [r["segment"] for r in segments.report(repo, "puppet")] == ["only"]


def test_an_error_in_one_segments_space_names_the_segment(home: Path, tmp_path: Path) -> None:
    good = {"x": {"method": "uniform", "dimension": {"low": 0, "high": 1}}}
    bad = {"x": {"method": "uniform", "dimension": {"low": 2, "high": 1}}}
    code, _, err = invoke("submit", "--phpo", str(options(tmp_path, space=[good, bad])))
    assert code == 1 and "low (2) must be less than high (1)" in err, err
    assert "(in the task of segment 'config_dev.name_B')" in err and err.count("\n") == 1
