"""The PNG figures' names and files, with the standard library only: the remote ``gridhpo plot
--png`` of a light install names the files the service draws exactly as the local one does."""
from __future__ import annotations

import re

FIGURES = ("history", "parallel", "curves", "importance", "slices", "timeline")


def safe(name: str) -> str:
    """A task name as a file name's part."""
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "task"


def png_name(task_name: str, figure: str) -> str:
    """The file a figure of a task goes to, locally and from a service."""
    return f"{safe(task_name)}-{figure}.png"
