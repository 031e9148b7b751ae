"""What "self-contained" means for report.html, checked on the parsed page (not on its text, where escaped record
content such as `&lt;img src=x&gt;` is harmless): nothing that loads or runs when the page opens."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements that load or run something; <a href> only navigates when clicked.
LOADING_TAGS = {
    "script",
    "link",
    "iframe",
    "frame",
    "img",
    "image",
    "object",
    "embed",
    "video",
    "audio",
    "source",
    "track",
    "base",
    "foreignobject",
    "use",
    "form",
    "input",
    "meta",
}
ALLOWED_META = ({"charset"}, {"name", "content"}, {"http-equiv", "content"})
CSS_LOADS = re.compile(r"@import|@font-face|url\(\s*['\"]?(?!#)", re.IGNORECASE)


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.links: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "meta" and names in ALLOWED_META:
            pass
        elif tag in LOADING_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=>")
            if name in ("src", "srcset", "xlink:href", "background", "poster", "data"):
                self.problems.append(f"<{tag} {name}={value!r}>")
            if name == "href" and tag != "a" and not value.startswith("#"):
                self.problems.append(f"<{tag} href={value!r}>")
            if name == "href" and tag == "a":
                self.links.append(value)
                if value.lower().startswith(("javascript:", "data:")):
                    self.problems.append(f"<a href={value!r}>")
            if name == "style" and CSS_LOADS.search(value):
                self.problems.append(f"<{tag} style={value!r}>")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and CSS_LOADS.search(data):
            self.problems.append(f"<style> {CSS_LOADS.search(data).group(0)}")


def loading_problems(page: str) -> list[str]:
    """Every element, attribute or style rule of `page` that would load or run something."""
    scan = _Scan()
    scan.feed(page)
    scan.close()
    return scan.problems


def links(page: str) -> list[str]:
    scan = _Scan()
    scan.feed(page)
    return scan.links
