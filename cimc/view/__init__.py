"""Reports people can look at: one self-contained HTML page per mapping or search
(`mapping_html`, `search_html`), and the same figures as PNG files for papers (`cimc.view.figures`).

    r = cimc.compile("model.onnx", "rram-256")
    cimc.view.write_mapping_html(r, "report.html")
"""

from __future__ import annotations

from cimc.files import write_atomic
from cimc.view.data import mapping_view
from cimc.view.page import render


def mapping_html(module, report, view: dict | None = None) -> str:
    """The HTML page of one mapping (a Module and its Report; `view`: its `mapping_view`, if made already)."""
    return render("mapping", f"cimc: {report.model} on {report.target}", view or mapping_view(module, report))


def write_mapping_html(result, path) -> None:
    """Write `result`'s page (a `cimc.compile` result) to `path`, atomically."""
    write_atomic(path, mapping_html(result.module, result.report), "--html")


def search_html(view: dict) -> str:
    """The HTML page of a search (`cimc.search.results.search_view`)."""
    doc = view["doc"]
    return render("search", f"cimc search: {doc.get('family')} on {doc.get('target')}", view)


__all__ = ["mapping_html", "mapping_view", "search_html", "write_mapping_html"]
