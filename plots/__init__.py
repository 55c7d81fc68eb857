"""Results visualisation: figure data (``data``), parameter importance (``importance``),
plotly figures (``figures``), the self-contained HTML report (``report``), PNG export
(``png``) and the live dashboard (``dashboard``)."""


# One import identity: this folder is gridhpo.plots; imported as a top-level `plots` (from the
# repository root) it would be a second copy of every module (docs/architecture.md, Layout).
if __name__ != "gridhpo.plots":
    raise ImportError(f"import gridhpo.plots, not {__name__}: the repository's top-level folders are "
                      "subpackages of gridhpo")
