"""The one page builder: Markdown and HTML written side by side, for the report, the study
sections and the results pages.

A ``Page`` collects blocks (headings, paragraphs, bullets, tables, figures); each block goes to
both the Markdown (blocks end in a newline and are joined by one: a blank line between them) and
the HTML (joined as they are). Figures are referred to by their path relative to the page's
folder; ``Page.html_document`` embeds them as base64 so the HTML page stands alone. Tables may
carry the data frame behind them, written as CSV beside the page by its caller.
"""

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;"
    "text-align:right}th{background:#f3f3f3}figure{display:inline-block;margin:0.5em;"
    "vertical-align:top}img{max-width:100%;image-rendering:pixelated}"
)


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([row(header), "|" + "---|" * len(header), *(row(r) for r in body)])


def html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def inline_figures(page_html: str, root: str | Path, figures: list[tuple[str, str]]) -> str:
    """``page_html`` with each figure's ``src='<relative path>'`` replaced by its PNG under
    ``root`` as a base64 data URI."""
    for _, rel in figures:
        data = base64.b64encode((Path(root) / rel).read_bytes()).decode()
        page_html = page_html.replace(
            f"src='{html.escape(rel)}'", f"src='data:image/png;base64,{data}'"
        )
    return page_html


@dataclass
class Section:
    """A finished part of a page: its Markdown (headings from level 2 down), the same content
    as HTML (``<img src='<relative path>'>`` for each figure), its figures and its tables."""

    markdown: str
    html: str
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> table (CSV)

    def inline_html(self, root: str | Path) -> str:
        """The HTML with each figure under ``root`` (the page's folder) embedded as base64."""
        return inline_figures(self.html, root, self.figures)


class Page:
    """Markdown and HTML written side by side, with the page's figures and tables."""

    def __init__(self) -> None:
        self.md: list[str] = []
        self.html: list[str] = []
        self.figures: list[tuple[str, str]] = []  # (caption, path relative to the page)
        self.tables: dict[str, pd.DataFrame] = {}  # name -> the data behind a table

    def heading(self, text: str, level: int = 3, markdown: bool = True) -> None:
        """A heading; ``markdown=False``: in the HTML only."""
        if markdown:
            self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, paragraph: str) -> None:
        self.md.append(paragraph + "\n")
        self.html.append(f"<p>{html.escape(paragraph)}</p>")

    def bullets(self, items: list[str]) -> None:
        """A bulleted list; nothing when ``items`` is empty."""
        if items:
            self.md.append("\n".join(f"- {s}" for s in items) + "\n")
            self.html.append(
                "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in items) + "</ul>"
            )

    def table(
        self,
        header: list[str],
        body: list[list[str]],
        name: str | None = None,
        frame: pd.DataFrame | None = None,
    ) -> None:
        """A table of strings; with ``name``, ``frame`` (the numbers behind it) is kept in
        ``tables``."""
        self.md.append(markdown_table(header, body) + "\n")
        self.html.append(html_table(header, body))
        if name is not None and frame is not None:
            self.tables[name] = frame

    def figure(self, caption: str, rel: str, titled: bool = False) -> None:
        """A PNG at ``rel`` (relative to the page's folder): the caption under the picture, or
        with ``titled`` above it (a level-3 heading in the Markdown)."""
        if titled:
            self.md.append(f"### {caption}\n\n![{caption}]({rel})\n")
            self.html.append(
                f"<figure><figcaption>{html.escape(caption)}</figcaption>"
                f"<img src='{html.escape(rel)}'></figure>"
            )
        else:
            self.md.append(f"![{caption}]({rel})\n\n*{caption}*\n")
            self.html.append(
                f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        self.figures.append((caption, rel))

    def image(self, alt: str, rel: str) -> None:
        """A PNG at ``rel`` without a caption."""
        self.md.append(f"![{alt}]({rel})\n")
        self.html.append(f"<img src='{html.escape(rel)}' alt='{html.escape(alt)}'>")
        self.figures.append((alt, rel))

    def raw(self, markdown: str, html_: str = "") -> None:
        """Markdown (ending in a newline) and HTML written as they are."""
        self.md.append(markdown)
        self.html.append(html_)

    def section(self, section: Section) -> None:
        """A finished section, a blank line after it, its figures and tables joining this
        page's."""
        self.raw(section.markdown + "\n", section.html)
        self.figures += section.figures
        self.tables |= section.tables

    def done(self) -> Section:
        return Section(self.markdown(), "".join(self.html), self.figures, self.tables)

    def markdown(self) -> str:
        return "\n".join(self.md)

    def html_document(self, title: str, root: str | Path) -> str:
        """One self-contained HTML page: ``title``, the blocks, every figure under ``root``
        embedded."""
        body = inline_figures("".join(self.html), root, self.figures)
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{CSS}</style></head><body>{body}</body></html>"
        )
