"""Maps the repository's top-level folders (DESIGN.md) onto the ``gridhpo`` package:
``steering/`` is ``gridhpo.steering``, and so on. Metadata lives in pyproject.toml."""
from __future__ import annotations

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
FOLDERS = ["steering", "evaluation", "bookkeeping", "checkpoints", "cli", "protocol"]

package_dir = {"gridhpo": "gridhpo"}
packages = ["gridhpo"]
for folder in FOLDERS:
    package_dir[f"gridhpo.{folder}"] = folder
    for init in sorted((ROOT / folder).rglob("__init__.py")):
        rel = init.parent.relative_to(ROOT)
        packages.append("gridhpo." + ".".join(rel.parts))

setup(
    package_dir=package_dir,
    packages=packages,
    package_data={"gridhpo.bookkeeping": ["migrations/script.py.mako"]},
    include_package_data=True,
)
