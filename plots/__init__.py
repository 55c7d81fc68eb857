"""Results visualisation: figure data (``data``), parameter importance (``importance``),
plotly figures (``figures``), the self-contained HTML report (``report``), PNG export
(``png``) and the live dashboard (``dashboard``)."""
from __future__ import annotations

from gridhpo._layout import one_identity

one_identity(__name__)
