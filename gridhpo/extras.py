"""Which extra of the distribution (``pip install 'gridhpo[EXTRA]'``) brings which library.

``pip install gridhpo`` is what a pilot and a remote CLI need (click, PyYAML, kombu); the
steering's bookkeeping and optimisers come with ``server`` (``all`` has every extra). A command
that reaches a library that is not installed says in one line which extra to install.
"""
from __future__ import annotations

# the top-level module a library is imported as -> the extra that installs it
EXTRAS: dict[str, str] = {
    "sqlalchemy": "server", "alembic": "server", "numpy": "server",
    "fastapi": "server", "uvicorn": "server", "starlette": "server", "pydantic": "server", "httpx": "server",
    "fastapi_offline": "server",
    "psycopg": "postgres",
    "hyperopt": "optimisers", "skopt": "optimisers", "nevergrad": "optimisers", "lightgbm": "optimisers",
    "optuna": "optimisers", "cmaes": "optimisers", "torch": "gp", "greenlet": "gp",
    "boto3": "s3", "botocore": "s3",
    "docker": "containers",
    "plotly": "plot", "matplotlib": "plot", "sklearn": "plot",
}


def extra_for(module: str | None) -> str | None:
    """The extra that installs ``module`` (a dotted name), None for a module no extra brings."""
    return EXTRAS.get(module.partition(".")[0]) if module else None


def install_hint(what: str, exc: ModuleNotFoundError) -> str | None:
    """``"<what> needs the server extra: pip install 'gridhpo[server]'"`` for a library an extra
    brings, None for any other missing module (a bug, not an install to fix)."""
    extra = extra_for(exc.name)
    if extra is None:
        return None
    return f"{what} needs the {extra} extra: pip install 'gridhpo[{extra}]'"
