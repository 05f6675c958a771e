"""One self-contained HTML page: sections of text, tables and PNG figures embedded as base64
``data:`` URIs (so the page can be mailed or attached to a CI run as a single file; the PNGs
are also written next to it). No JavaScript framework, no external CSS or fonts.

The page carries one small inline script that counts images that failed to decode and writes
the result to ``<body data-images-ok=... data-images-broken=...>`` on load; a headless browser
(the test) and a person (a red banner) can both see a broken figure.
"""
from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4} img{max-width:100%;height:auto;display:block;margin:.5em 0}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.85em} .muted{color:#777}
nav a{margin-right:1em} figure{margin:.8em 0} figcaption{color:#555;font-size:.9em}
#broken{display:none;background:#c00;color:#fff;padding:.5em}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0, bad = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; else bad++;
  }
  document.body.setAttribute('data-images-ok', ok);
  document.body.setAttribute('data-images-broken', bad);
  if (bad) document.getElementById('broken').style.display = 'block';
});
"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Figure:
    """A PNG figure: ``name`` is its file name next to the page."""

    name: str
    png: bytes
    caption: str = ""

    def html(self) -> str:
        data = base64.b64encode(self.png).decode("ascii")
        cap = f"<figcaption>{esc(self.caption)}</figcaption>" if self.caption else ""
        return f'<figure><img alt="{esc(self.caption or self.name)}" data-file="{esc(self.name)}" src="data:image/png;base64,{data}">{cap}</figure>'


@dataclass
class Section:
    """One ``<section id=...>`` of the page; ``parts`` are HTML snippets or :class:`Figure`\\ s."""

    id: str
    title: str
    parts: list = field(default_factory=list)

    def add(self, part: "str | Figure") -> "Section":
        self.parts.append(part)
        return self

    @property
    def figures(self) -> list[Figure]:
        return [p for p in self.parts if isinstance(p, Figure)]

    def html(self) -> str:
        body = "\n".join(p.html() if isinstance(p, Figure) else p for p in self.parts)
        return f'<section id="{esc(self.id)}">\n<h2>{esc(self.title)}</h2>\n{body}\n</section>'


def paragraph(text: str, muted: bool = False) -> str:
    return f'<p class="muted">{esc(text)}</p>' if muted else f"<p>{esc(text)}</p>"


def preformatted(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def fmt(value: Any) -> str:
    """A compact, readable cell value."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def table(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document."""
    nav = " ".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(s.html() for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script></head>\n"
        f"<body><div id=\"broken\">Some figures of this report failed to load.</div>\n"
        f"<h1>{esc(title)}</h1><p class=\"muted\">{esc(subtitle)}</p>\n<nav>{nav}</nav>\n{body}\n</body></html>\n"
    )
