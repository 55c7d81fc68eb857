"""The steering: task lifecycle, search space, optimisers, schedulers and dispatch."""


# One import identity: this folder is gridhpo.steering; imported as a top-level `steering` (from the
# repository root) it would be a second copy of every module (docs/architecture.md, Layout).
if __name__ != "gridhpo.steering":
    raise ImportError(f"import gridhpo.steering, not {__name__}: the repository's top-level folders are "
                      "subpackages of gridhpo")
