"""RSS/Atom documents -> entries, with feedparser; normalised titles and de-duplication keys.

feedparser reads RSS 0.9x/1.0/2.0 and Atom alike and is lenient: a document that is not
well-formed XML is still "parsed" by its loose parser, with ``bozo`` set. Here such a
document is refused whole -- a dead letter ``malformed`` naming the XML error -- rather
than trusting what a loose parse made of it (fail closed: a lost headline is counted, a
garbled one could mislead). A character-encoding override is tolerated (a common, harmless
server misconfiguration).

>>> doc = b'''<rss version="2.0"><channel><title>t</title><item><title>Bitcoin ETF
...   approved</title><link>https://ex.org/a?utm_source=x</link>
...   <pubDate>Mon, 07 Dec 2026 06:00:00 GMT</pubDate></item></channel></rss>'''
>>> entries, dead = parse_document(doc, source="ex", now_ns=1)
>>> entries[0].title, entries[0].published_ns, dead
('Bitcoin ETF approved', 1796623200000000000, None)
>>> normalise_title("  Bitcoin ETF — APPROVED!! ") == normalise_title("bitcoin etf approved")
True
"""

from __future__ import annotations

import calendar
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser

from tripwire.model import DeadLetter, DeadReason

MAX_TITLE = 500
MAX_SUMMARY = 2000
MAX_ENTRIES = 500  # per document; more is counted, not read
_TRACKING = re.compile(r"^(utm_|fbclid$|gclid$|mc_)")
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
# feedparser's "bozo" exceptions that do not make the XML untrustworthy.
_TOLERATED = ("CharacterEncodingOverride", "NonXMLContentType")


@dataclass(frozen=True, slots=True)
class Entry:
    title: str
    link: str
    published_ns: int | None  # the source's own time (published, else updated), UTC
    summary: str = ""


def parse_document(body: bytes, *, source: str,
                   now_ns: int) -> tuple[list[Entry], DeadLetter | None]:
    """The entries of a feed document, or ``([], dead letter)`` when it is not a feed."""
    parsed = feedparser.parse(body, sanitize_html=True, resolve_relative_uris=False)
    exc = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if exc is not None and type(exc).__name__ not in _TOLERATED:
        raw = body[:DeadLetter.MAX_RAW_CHARS].decode("utf-8", errors="replace")
        return [], DeadLetter.make(source, DeadReason.MALFORMED, raw, now_ns, None,
                                   f"not a well-formed feed: {type(exc).__name__}: {exc}"[:500])
    if not parsed.get("version") and not parsed.entries:
        raw = body[:DeadLetter.MAX_RAW_CHARS].decode("utf-8", errors="replace")
        return [], DeadLetter.make(source, DeadReason.MALFORMED, raw, now_ns, None,
                                   "not an RSS or Atom document")
    out = []
    for e in parsed.entries[:MAX_ENTRIES]:
        title = " ".join(str(e.get("title", "")).split())[:MAX_TITLE]
        if not title:
            continue
        when = e.get("published_parsed") or e.get("updated_parsed")
        published = calendar.timegm(when) * 1_000_000_000 if when else None
        summary = " ".join(str(e.get("summary", "")).split())[:MAX_SUMMARY]
        out.append(Entry(title, str(e.get("link", ""))[:2000], published, summary))
    return out, None


def normalise_title(title: str) -> str:
    """Case, accents' composition, punctuation and spacing folded: the same headline
    copied by two wires (one adds an em dash or shouts) gives the same text."""
    text = unicodedata.normalize("NFKC", title).casefold()
    return " ".join(_NOT_WORD.sub(" ", text).split())


def canonical_link(link: str) -> str:
    """The link without tracking parameters, fragment, ``www.`` or a trailing slash."""
    try:
        parts = urlsplit(link.strip())
    except ValueError:
        return link.strip()
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not _TRACKING.match(k)])
    host = parts.netloc.lower().removeprefix("www.")
    return urlunsplit(("", host, parts.path.rstrip("/"), query, ""))


def dedup_keys(entry: Entry) -> tuple[str, ...]:
    """The keys under which a headline counts as seen: its normalised title and, when it
    has one, its canonical link (either one seen before makes it a duplicate)."""
    keys = ["t:" + _digest(normalise_title(entry.title))]
    if entry.link:
        keys.append("l:" + _digest(canonical_link(entry.link)))
    return tuple(keys)


def item_id(entry: Entry) -> str:
    """A deterministic id for the headline (same headline, same id, whatever the source)."""
    return "news-" + _digest(normalise_title(entry.title))[:32]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
