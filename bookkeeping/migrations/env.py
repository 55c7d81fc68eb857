"""Alembic environment: the engine comes from gridhpo (``config.attributes['engine']``)."""
from __future__ import annotations

from alembic import context

from gridhpo.bookkeeping.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
