"""The repository's top-level folders are the subpackages of ``gridhpo``:
``gridhpo/steering`` is a link to ``steering/``, and so on, so that every tool (setuptools,
mypy, pytest) sees one ordinary package. Metadata lives in pyproject.toml."""
from __future__ import annotations

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["gridhpo", "gridhpo.*"]),
    # py.typed: the package's type hints are for its users' type checkers too (PEP 561)
    package_data={"gridhpo": ["py.typed"], "gridhpo.bookkeeping": ["migrations/script.py.mako"]},
)
