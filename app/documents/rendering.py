"""HTML to PDF with WeasyPrint, without network access.

Letters and notes are rendered from Missive's own templates or from HTML written by
agents (sanitised with nh3 first). The URL fetcher only serves ``data:`` URIs and files
under ``app/static`` (logos, fonts): a draft can never make the server fetch a URL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import nh3

from app.core.errors import ValidationFailed

STATIC_DIR = (Path(__file__).resolve().parents[1] / "static").resolve()

# What a drafted letter may contain: text structure, tables, images as data: URIs.
ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "b",
    "em",
    "i",
    "u",
    "s",
    "sub",
    "sup",
    "span",
    "div",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "ul",
    "ol",
    "li",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "hr",
    "img",
    "a",
    "small",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "style"},
    "img": {"src", "alt", "width", "height"},
    "a": {"href"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}


def sanitise_html(html: str) -> str:
    """Keep the structure of a drafted letter; drop scripts, forms and remote resources."""
    return nh3.clean(
        html or "",
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"data", "mailto", "https", "http"},
        link_rel="noopener noreferrer",
    )


def _fetcher():
    from weasyprint.urls import URLFetcher

    class LocalOnlyFetcher(URLFetcher):
        """``data:`` URIs and files under app/static; everything else is refused."""

        def fetch(self, url, headers=None):
            parsed = urlparse(url)
            if parsed.scheme == "data":
                return super().fetch(url, headers)
            if parsed.scheme == "file":
                path = Path(unquote(parsed.path)).resolve()
                if path.is_relative_to(STATIC_DIR) and path.is_file():
                    return super().fetch(url, headers)
            raise ValueError(f"ressource externe refusée : {url[:200]}")

    return LocalOnlyFetcher(timeout=5)


def html_to_pdf(html: str, *, stylesheet: str | None = None) -> bytes:
    """Render a full HTML document (and an optional CSS text) to PDF bytes."""
    from weasyprint import CSS, HTML

    fetcher = _fetcher()
    try:
        document = HTML(string=html, base_url=STATIC_DIR.as_uri() + "/", url_fetcher=fetcher)
        stylesheets = [CSS(string=stylesheet, url_fetcher=fetcher)] if stylesheet else None
        return document.write_pdf(stylesheets=stylesheets)
    except Exception as exc:  # WeasyPrint parses arbitrary HTML/CSS: report, never a 500
        raise ValidationFailed(
            f"Le document n'a pas pu être mis en page : {exc}",
            errors=[{"field": "html", "message": "Mise en page impossible."}],
        ) from exc
