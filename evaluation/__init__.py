"""The site side: the pilot, container runtimes and the evaluation contract.

Nothing here imports an optimiser library, so a site installs a light package.
"""


# One import identity: this folder is gridhpo.evaluation; imported as a top-level `evaluation` (from the
# repository root) it would be a second copy of every module (docs/architecture.md, Layout).
if __name__ != "gridhpo.evaluation":
    raise ImportError(f"import gridhpo.evaluation, not {__name__}: the repository's top-level folders are "
                      "subpackages of gridhpo")
