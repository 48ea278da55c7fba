"""HTML renderers of the report's sections, one module per audit section.

A module named like its section defines ``render(section, artifacts, report) -> str``,
which computes plain data and figures and renders ``templates/sections/<name>.html.j2``:
``section`` is ``report["sections"][name]``, ``artifacts`` the arrays the section
returned for pictures (empty when the report is re-rendered from ``report.json``). A
section without a renderer is shown by :func:`generic` (its verdict and numbers).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from advml.report.templating import render_template

__all__ = ["Renderer", "generic", "renderer"]

Renderer = Callable[[dict[str, Any], dict[str, np.ndarray], dict[str, Any]], str]


def renderer(name: str) -> Renderer:
    """The renderer of section ``name``, or :func:`generic` when it has none."""
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        return generic
    render: Renderer = module.render
    return render


def generic(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    """The verdict and the section's numbers as formatted JSON."""
    data = {k: v for k, v in section.items() if k not in ("title", "threat", "verdict")}
    return render_template(
        "sections/_generic.html.j2",
        verdict=section["verdict"],
        numbers=json.dumps(data, indent=1, default=str),
    )
