"""One self-contained HTML file: the page's style and script (report.css, report.js, shipped
with cimc) and its data, gzip-compressed and base64-encoded inside the page (a ResNet's
schedule is megabytes of JSON). No network is needed to open it: no CDN, no fonts, no
images from elsewhere. The title is escaped; everything from the model reaches the page only
as data, which the script writes as text."""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
from importlib import resources

KINDS = ("mapping", "search")


def _finite(x):
    """JSON without NaN or Infinity (which JSON.parse refuses): those become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _asset(name: str) -> str:
    return resources.files("cimc.view").joinpath(name).read_text(encoding="utf-8")


def render(kind: str, title: str, data: dict) -> str:
    if kind not in KINDS:
        raise ValueError(f"page kind {kind!r}")
    text = json.dumps(_finite(data), separators=(",", ":"), allow_nan=False)
    # mtime=0: the same data gives the same bytes (deterministic pages)
    blob = base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)).decode("ascii")
    script = _asset("report.js").replace("</", "<\\/")
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n{_asset('report.css')}</style>\n</head>\n"
            f"<body data-kind=\"{kind}\">\n<header><h1 id=\"title\"></h1><p id=\"subtitle\"></p><nav id=\"nav\"></nav>"
            "</header>\n<main id=\"main\"><p>Drawing the report (it needs JavaScript)...</p></main>\n"
            f"<script id=\"cimc-data\" type=\"application/octet-stream\">{blob}</script>\n"
            f"<script>\n{script}</script>\n</body>\n</html>\n")
