"""``gridhpo results TASK --artifacts DIR``: the metadata and metrics files the pilots kept for
each attempt (``evaluation.files.meta``/``metrics``), from the task's checkpoint store into DIR.

The store is found as a pilot finds it, minus the pilot's own ``--store``: ``--store`` here, else
the task file's ``evaluation.checkpoint.store``, else GRIDHPO_STORE, else GRIDHPO_HOME/store.
Pilots started with a ``--store`` of their own kept the files there: give the same URL.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gridhpo import config
from gridhpo.checkpoints import open_store
from gridhpo.checkpoints.artifacts import download


def download_artifacts(row: Any, dest: Path, store_url: str | None) -> str:
    """Download; returns the line to print (how many files, where, from which store)."""
    url = store_url or row.spec["evaluation"]["checkpoint"]["store"] or config.store_url(None)
    store = open_store(url)
    try:
        written = download(store, row.id, row.name, dest)
    finally:
        store.close()
    where = config.redact(url)
    if not written:
        return f"task {row.name!r}: no metadata or metrics files in {where} (evaluation.files.meta/metrics)"
    return f"task {row.name!r}: {len(written)} files from {where} into {dest}"
