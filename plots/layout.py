"""The one look of every figure of the report: title, size, margins and legend (plotly layout)."""
from __future__ import annotations

from typing import Any


def layout(title: str, **extra: Any) -> dict[str, Any]:
    """A figure's plotly layout with ``title``; ``extra`` adds or overrides keys (axes, meta)."""
    base: dict[str, Any] = {"title": {"text": title, "font": {"size": 13}, "x": 0.01, "xanchor": "left"},
                            "height": 360, "margin": {"l": 60, "r": 20, "t": 60, "b": 50}, "template": "plotly_white",
                            "legend": {"orientation": "h", "y": -0.2}}
    base.update(extra)
    return base
