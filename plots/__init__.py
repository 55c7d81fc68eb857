"""Results visualisation: figure data (``data``), parameter importance (``importance``),
plotly figures (``figures``), the self-contained HTML report (``report``), PNG export
(``png``) and the live dashboard (``dashboard``)."""
