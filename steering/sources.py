"""What ``gridhpo submit`` reads: a task file, phpo's options file, or an hpogrid project, as
the task files to submit (one, or one per segment of a segmented phpo task)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gridhpo.errors import ConfigError
from gridhpo.steering.taskfile import TaskSpec, load_task, parse_task

if TYPE_CHECKING:  # the bookkeeping needs the server extra; submit --server does not
    from gridhpo.bookkeeping import Repository


@dataclass
class Submission:
    tasks: list[tuple[TaskSpec, dict[str, Any]]]  # each validated spec with the task file it prints as
    warnings: list[str] = field(default_factory=list)
    name: str | None = None  # --name for a task file (a converted source has it in its tasks already)


def read(task_file: Path | None = None, phpo_file: Path | None = None, hpogrid_path: Path | None = None,
         name: str | None = None) -> Submission:
    """Exactly one of the three sources, converted and validated (nothing is submitted)."""
    if task_file is not None:
        spec = load_task(task_file)
        return Submission([(spec, spec.to_dict())], name=name)
    if phpo_file is not None:
        from gridhpo.steering import phpo

        conv = phpo.convert(phpo.load_options(phpo_file), str(phpo_file), phpo_file.resolve().parent, name)
        return Submission([(_parse_one(t, str(phpo_file), len(conv.tasks) > 1), t) for t in conv.tasks],
                          conv.warnings)
    if hpogrid_path is not None:
        from gridhpo.steering import hpogrid

        project = hpogrid.load_project(hpogrid_path)
        h = hpogrid.convert(project, name)
        return Submission([(parse_task(h.task, project.hpo.file), h.task)], h.warnings)
    raise ConfigError("nothing to submit: give a task file, a phpo options file or an hpogrid project")


def _parse_one(task: dict[str, Any], source: str, segmented: bool) -> TaskSpec:
    try:
        return parse_task(task, source)
    except ConfigError as exc:
        if segmented:  # which segment's task (each has its own space)
            raise ConfigError(f"{exc} (in the task of segment {task['name']!r})") from None
        raise


def submit(repo: Repository, submission: Submission) -> list[tuple[int, str]]:
    """Record every task of ``submission``; a name already taken refuses them all, before any is
    recorded (a segmented task is one submission)."""
    from gridhpo.steering.runner import submit as submit_one

    if len(submission.tasks) > 1:
        for spec, _ in submission.tasks:
            if repo.find_task(spec.name) is not None:
                raise ConfigError(f"task name {spec.name!r} is taken: nothing submitted (use --name)")
        return [submit_one(repo, spec) for spec, _ in submission.tasks]
    return [submit_one(repo, submission.tasks[0][0], submission.name)]


class _Dumper(yaml.SafeDumper):
    """A multi-line string (hpogrid's trial command) as a ``|`` block: the printed task file reads
    as the script it holds, and loads back the same."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def dump(submission: Submission) -> str:
    """The task files of ``--dry-run``: one YAML document per task."""
    return yaml.dump_all([raw for _, raw in submission.tasks], Dumper=_Dumper, sort_keys=False, width=1000)
