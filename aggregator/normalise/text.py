"""Text normalisation shared by titles, tags and source names (pure functions)."""

from __future__ import annotations

import re
import unicodedata

# Characters XML 1.0 forbids (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF). One of them
# anywhere aborts a whole feed in feedgen/lxml, so every string is cleaned before it is stored.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SPACE = re.compile(r"\s+")


def strip_invalid_xml(text: str) -> str:
    """Remove characters that may not appear in an XML document."""
    return _INVALID_XML.sub("", text)


def clean_line(text: str) -> str:
    """One line of display text: valid XML, whitespace collapsed, trimmed (titles, names)."""
    return _SPACE.sub(" ", strip_invalid_xml(text)).strip()


def display_name(text: str) -> str:
    """A tag or source name as shown: NFKC, whitespace collapsed and trimmed."""
    return clean_line(unicodedata.normalize("NFKC", text))
