"""The HTML report: store → data (I/O) → typed model (pure) → one self-contained HTML file (pure).

``render_report`` is what ``segsync report`` and the daemon's ``/report`` call.
"""

from segsync.report.render import render_report

__all__ = ["render_report"]
