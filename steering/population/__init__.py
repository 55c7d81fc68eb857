"""Population-based training as decisions (issue 17): the population, its exploit and explore
steps, the lineage of every member and the checkpoints a member is still to start from.

Pure and deterministic: no I/O, no clock. The steering feeds reports in (a member's value
at a step of the task's resource) and carries the decisions out (a copy of a checkpoint in
the store, a point message with the new config and the checkpoint it starts from).
Replaying the same reports in the same order rebuilds the same population, so a restarted
steering recovers it from the bookkeeping.
"""
from __future__ import annotations

from gridhpo.steering.population.config import PBTConfig
from gridhpo.steering.population.explore import explore
from gridhpo.steering.population.population import (
    Continue,
    Exploit,
    Member,
    Population,
    Segment,
    Wait,
)

__all__ = ["Continue", "Exploit", "Member", "PBTConfig", "Population", "Segment", "Wait", "explore"]
