"""Posts are Markdown: CommonMark (markdown-it-py, raw HTML off) with tables,
fenced code highlighted by Pygments, bare URLs linked and ``@name`` mentions.

The rendered HTML then goes through an allow-list (``sanitize``): only the
tags and attributes listed here survive, every link's address is checked, and
anything else is dropped or escaped, so that a bug or a new feature in the
Markdown library cannot put script into a page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any, Optional
from urllib.parse import quote

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

MENTION = re.compile(r"(?<![\w@/])@([A-Za-z0-9_-](?:[A-Za-z0-9_.-]{0,30}[A-Za-z0-9_-])?)")
BARE_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")

ALLOWED: dict[str, set[str]] = {
    "p": set(),
    "br": set(),
    "hr": set(),
    "em": set(),
    "strong": set(),
    "s": set(),
    "del": set(),
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "div": {"class"},
    "blockquote": set(),
    "ul": set(),
    "ol": {"start"},
    "li": set(),
    "h1": set(),
    "h2": set(),
    "h3": set(),
    "h4": set(),
    "h5": set(),
    "h6": set(),
    "table": set(),
    "thead": set(),
    "tbody": set(),
    "tr": set(),
    # No style attribute is ever written: the CSP (style-src 'self') would
    # refuse it. A table cell's alignment (markdown-it's only style) becomes
    # an align-* class instead (_ALIGN), styled by forum.css.
    "th": {"style"},
    "td": {"style"},
    "a": {"href", "title", "class"},
    "img": {"src", "alt", "title"},
}
VOID = {"br", "hr", "img"}
SAFE_CLASS = re.compile(r"^[A-Za-z0-9_ -]{0,200}$")
_ALIGN = re.compile(r"^\s*text-align\s*:\s*(left|center|right)\s*;?\s*$", re.I)


def _safe_url(url: str, *, image: bool = False) -> bool:
    url = url.strip()
    if image:
        # Images from this site only: a post must not make readers' browsers
        # fetch from elsewhere (tracking), and the CSP would block it anyway.
        return url.startswith("/") and not url.startswith("//")
    lowered = url.lower()
    if lowered.startswith(("http://", "https://", "mailto:")):
        return True
    return (url.startswith(("/", "#")) and not url.startswith("//")) or (
        ":" not in url.split("/")[0] and not url.startswith("\\")
    )


class _Sanitizer(HTMLParser):
    """Re-emits only allowed tags and attributes; text is escaped again."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        if tag in ("script", "style"):
            self.skipping += 1
        allowed = ALLOWED.get(tag)
        if allowed is None:
            return
        kept = []
        for name, value in attrs:
            value = value or ""
            if name not in allowed:
                continue
            if name == "class" and not SAFE_CLASS.match(value):
                continue
            if name in ("href", "src") and not _safe_url(value, image=name == "src"):
                continue
            if name == "start" and not value.isdigit():
                continue
            if name == "style":
                align = _ALIGN.match(value)
                if align:
                    kept.append(f' class="align-{align.group(1).lower()}"')
                continue
            kept.append(f' {name}="{html.escape(value, quote=True)}"')
        if tag == "a":
            kept.append(' rel="nofollow noopener"')
        self.out.append(f"<{tag}{''.join(kept)}>")
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skipping = max(0, self.skipping - 1)
        if tag in VOID or tag not in ALLOWED or tag not in self.open:
            return
        # Close whatever was left open inside it, so the output is balanced.
        while self.open:
            inner = self.open.pop()
            self.out.append(f"</{inner}>")
            if inner == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        self.out.append(html.escape(data, quote=False))

    def result(self) -> str:
        self.close()
        return "".join(self.out) + "".join(f"</{t}>" for t in reversed(self.open))


def sanitize(markup: str) -> str:
    """``markup`` with only the allowed tags, attributes and link addresses left."""
    parser = _Sanitizer()
    parser.feed(markup)
    return parser.result()


_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(lang.strip().split()[0]) if lang.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes it as plain code
    return str(highlight(code, lexer, _FORMATTER))


def _link_text(state: Any, user_url: Callable[[str], str]) -> None:
    """A core rule: bare URLs and ``@name`` in text become links (not inside links or code)."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        depth = 0
        for token in block.children:
            if token.type == "link_open":
                depth += 1
            elif token.type == "link_close":
                depth -= 1
            if token.type != "text" or depth > 0:
                children.append(token)
                continue
            children.extend(_split_text(token.content, user_url))
        block.children = children


def _split_text(text: str, user_url: Callable[[str], str]) -> list[Token]:
    pattern = re.compile(f"{BARE_URL.pattern}|{MENTION.pattern}")
    tokens: list[Token] = []
    position = 0
    for found in pattern.finditer(text):
        if found.start() > position:
            tokens.append(_text(text[position : found.start()]))
        if found.group(1):
            href, label, css = user_url(found.group(1)), found.group(0), "mention"
        else:
            href, label, css = found.group(0), found.group(0), ""
        link = Token("link_open", "a", 1)
        link.attrs = {"href": href}
        if css:
            link.attrs["class"] = css
        tokens += [link, _text(label), Token("link_close", "a", -1)]
        position = found.end()
    if position < len(text):
        tokens.append(_text(text[position:]))
    return tokens


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def make_renderer(user_url: Callable[[str], str]) -> Callable[[str], str]:
    """A function from a post's Markdown to safe HTML; ``user_url(name)`` links mentions."""
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    md.core.ruler.push("forum_links", lambda state: _link_text(state, user_url))

    def render(text: str) -> str:
        return sanitize(md.render(text))

    return render


# Code in a post: a fenced block (to its closing fence, or the end) or an
# inline span.
_CODE = re.compile(r"```[\w+-]*[^\S\n]*\n?(.*?)(?:\n?```|\Z)|`([^`\n]+)`", re.S)


def _prose(text: str) -> str:
    """Prose as one line of plain text, Markdown marks dropped."""
    lines = r"^\s*(?:>\s*)+|^\s*#+\s|^\s*[-+*]\s"
    inline = r"\*\*|(?<!\w)\*|\*(?!\w)"
    # A table's delimiter row goes; its cells are separated by a dot, rows by ";".
    text = re.sub(r"^\s*\|?(?:\s*:?-+:?\s*\|)+\s*(?::?-+:?\s*)?$", " ", text, flags=re.M)
    text = re.sub(
        r"^\s*\|(.*?)\|?\s*$",
        lambda row: " · ".join(c.strip() for c in row.group(1).split("|")) + ";",
        text,
        flags=re.M,
    )
    return " ".join(re.sub(inline, "", re.sub(lines, " ", text, flags=re.M)).split())


def excerpt(body: str, words: list[str], size: int = 240) -> str:
    """A stretch of ``body`` around the first of ``words``, escaped, with the
    words wrapped in ``<mark>``: prose as plain text (Markdown marks dropped),
    code kept apart from it in ``<code>`` with its line breaks."""
    # (is_code, text) pieces, in order; the excerpt's window runs over their
    # texts joined by single spaces.
    pieces: list[tuple[bool, str]] = []
    at = 0
    for found in _CODE.finditer(body):
        pieces.append((False, _prose(body[at : found.start()])))
        code = found.group(1) if found.group(1) is not None else found.group(2)
        lines = [line.rstrip() for line in code.strip("\n").splitlines()]
        pieces.append((True, "\n".join(line for line in lines if line.strip())))
        at = found.end()
    pieces.append((False, _prose(body[at:])))
    pieces = [(is_code, text) for is_code, text in pieces if text]
    text = " ".join(piece for _, piece in pieces)
    lowered = text.lower()
    first = min((i for i in (lowered.find(w.lower()) for w in words) if i >= 0), default=0)
    start = max(0, first - size // 3)
    if start:
        # Begin at a word: after the first space within a few characters.
        space = text.find(" ", start, first)
        start = space + 1 if space != -1 and space - start < 20 else start
    stop = start + size
    pattern = "|".join(re.escape(html.escape(w, quote=False)) for w in words if w)
    shown = []
    offset = 0
    for is_code, piece in pieces:
        lo, hi = max(start, offset), min(stop, offset + len(piece))
        if lo < hi:
            part = html.escape(piece[lo - offset : hi - offset], quote=False)
            if pattern:
                part = re.sub(f"({pattern})", r"<mark>\1</mark>", part, flags=re.I)
            shown.append(f"<code>{part}</code>" if is_code else part)
        offset += len(piece) + 1
    return ("…" if start else "") + " ".join(shown) + ("…" if stop < len(text) else "")


def mentions(text: str) -> list[str]:
    """The names ``@mentioned`` in ``text``, outside code, each once, in order."""
    without_code = re.sub(r"```.*?(```|$)|`[^`\n]*`", " ", text, flags=re.S)
    names: list[str] = []
    for found in MENTION.finditer(without_code):
        if found.group(1) not in names:
            names.append(found.group(1))
    return names[:10]


def quote_post(author: str, body: str) -> str:
    """The Markdown that quotes ``body`` by ``author`` in a reply."""
    lines = body.strip().splitlines() or [""]
    return f"@{author} wrote:\n" + "\n".join("> " + line for line in lines) + "\n\n"


def user_path(name: str) -> str:
    return "/u/" + quote(name, safe="")


def highlight_css() -> str:
    """Pygments' rules for the code classes, light and dark (served as a static-like file)."""
    light = HtmlFormatter(style="friendly").get_style_defs(".post-body pre")
    dark = HtmlFormatter(style="monokai").get_style_defs(".post-body pre")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
