"""``evaluation: {python: "module:function"}``: the objective runs inside the pilot.

For cheap objectives (analytic functions, benchmarks of the dispatch path) where starting
a process would cost more than evaluating. The function takes the point's parameters as
keyword arguments... or one dict, and returns a number or a mapping such as
``{"loss": 0.3}``; its result is written to output.json as a command would.
"""
from __future__ import annotations

import importlib
import inspect
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

from gridhpo.errors import EvaluationError
from gridhpo.evaluation.runtimes._base import Handle, Job, Runtime


class DoneHandle(Handle):
    """An evaluation that ended before ``start`` returned: an in-process call is synchronous."""

    def __init__(self, code: int, stderr: str, output: dict[str, Any] | None = None) -> None:
        self.code = code
        self.stderr = stderr
        self._output = output

    def poll(self) -> int | None:
        return self.code

    def stop(self, grace: float) -> int:
        return self.code

    def output_tail(self, lines: int = 20) -> str:
        return "\n".join(self.stderr.splitlines()[-lines:])

    def output(self) -> dict[str, Any] | None:
        return self._output


class InProcessRuntime(Runtime):
    name = "python"
    in_process = True

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str | None], Callable[..., Any]] = {}

    def load(self, ref: str, source_dir: str | None) -> Callable[..., Any]:
        key = (ref, source_dir)
        if key not in self._cache:
            module, _, name = ref.partition(":")
            if source_dir and source_dir not in sys.path:
                sys.path.insert(0, source_dir)
            try:
                fn = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as exc:
                raise EvaluationError(f"evaluation.python {ref!r} cannot be loaded: {exc}") from exc
            if not callable(fn):
                raise EvaluationError(f"evaluation.python {ref!r} is not a function")
            self._cache[key] = fn
        return self._cache[key]

    def check(self, job: Job) -> None:
        if not job.python:
            raise EvaluationError("the in-process runtime needs evaluation.python")
        self.load(job.python, job.source_dir)

    def _call(self, ref: str, source_dir: str | None, params: dict[str, Any],
              metric: str) -> tuple[dict[str, Any] | None, str]:
        """(the output.json the call amounts to, "") or (None, the error). A number returned
        is the objective ``metric``; a mapping is taken as output.json."""
        fn = self.load(ref, source_dir)
        try:
            result = fn(dict(params)) if _takes_one_mapping(fn) else fn(**params)
        except Exception:  # the user's objective raised: that point failed, the pilot goes on
            return None, traceback.format_exc()
        if isinstance(result, (int, float)) and not isinstance(result, bool):
            return {"status": 0, metric: float(result)}, ""
        if isinstance(result, dict):
            try:
                json.dumps(result, allow_nan=True)
            except (TypeError, ValueError) as exc:
                return None, f"{ref} returned a value that is not JSON: {exc}"
            return {"status": 0, **result}, ""
        return None, f"{ref} returned {type(result).__name__}, not a number or a dict"

    def start(self, job: Job) -> Handle:
        """The contract's start (gridhpo.testing.runtimes): the function is called with
        ``job.params``; its result is the handle's output and, unless ``job.in_memory``, the
        work directory's output.json, as a command would write it; a failure's traceback is
        the handle's output tail."""
        self.check(job)
        assert job.python is not None  # check refused a job without it
        out, error = self._call(job.python, job.source_dir, job.params, job.metric)
        if out is None:
            return DoneHandle(1, error)
        if not job.in_memory:
            (job.workdir / "output.json").write_text(json.dumps(out, allow_nan=True))
        return DoneHandle(0, "", out)


def _takes_one_mapping(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(params) == 1 and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD) \
        and params[0].name in ("params", "point", "x", "config")

