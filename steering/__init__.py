"""The steering: task lifecycle, search space, optimisers, schedulers and dispatch."""
