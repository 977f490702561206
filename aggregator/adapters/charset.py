"""Guessing the encoding of text that is not UTF-8 (owns charset-normalizer).

charset-normalizer ranks candidate encodings by how chaotic each decoding looks, and for short
Chinese texts (a title and a sentence) several decodings tie: a GBK post often ranks as Korean
(cp949) or Japanese, a Big5 post as Japanese, and would be published as nonsense. This tool
reads Chinese news archives, so when the best guess is any East Asian multibyte encoding, the
Chinese decodings are compared by a measure no library offers: the share of their characters
among the most common Chinese characters (the first level of GB2312 and of Big5, about 6,800).
A right decoding scores near 1; a wrong one scrambles characters into rarer ones. This is
done only when charset-normalizer did not recognise a language (too little text): a Korean or
Japanese text it recognises keeps its guess. The catch: a few words of Korean or Japanese in a
legacy encoding may read as Chinese (save such files as UTF-8).
"""

from __future__ import annotations

from functools import lru_cache

# charset-normalizer's names of East Asian multibyte encodings
EAST_ASIAN = frozenset(
    {
        "big5", "big5hkscs", "cp950", "gb18030", "gb2312", "gbk", "hz",
        "cp949", "euc_kr", "johab", "iso2022_kr",
        "cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004",
        "euc_jisx0213", "iso2022_jp",
    }
)  # fmt: skip
CHINESE = ("gb18030", "big5hkscs")  # supersets of GBK/GB2312 and of Big5
ENOUGH = 0.8  # share of common characters a Chinese decoding needs to be taken
RECOGNISED = 0.05  # charset-normalizer's coherence from which it recognised the language


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    pairs = [(lead, trail, "gb2312") for lead in range(0xB0, 0xD8) for trail in range(0xA1, 0xFF)]
    # GB2312 level 1 above: the 3,755 most used simplified; Big5 level 1: 5,401 traditional
    pairs += [
        (lead, trail, "big5")
        for lead in range(0xA4, 0xC7)
        for trail in (*range(0x40, 0x7F), *(range(0xA1, 0xFF) if lead < 0xC6 else ()))
    ]  # (level 1 ends at C67E: C6A1 and on are kana and symbols)
    chars = (bytes((lead, trail)).decode(codec, "ignore") for lead, trail, codec in pairs)
    return frozenset(c for c in chars if len(c) == 1)


def common_share(text: str) -> float:
    """Share of the text's non-ASCII characters that are common Chinese characters."""
    wide = [c for c in text if c >= "\x80"]
    if not wide:
        return 0.0
    common = _common()
    return sum(c in common for c in wide) / len(wide)


def guess(data: bytes) -> tuple[str, str] | None:
    """(text, encoding) of bytes that are not UTF-8; None when no encoding fits."""
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        return None
    text, encoding = str(best), best.encoding
    # Only a guess made without recognising the language (charset-normalizer's coherence is
    # nil: too little text) is compared; a recognised Korean or Japanese text is left alone.
    if encoding in EAST_ASIAN and best.coherence < RECOGNISED:
        chosen = (common_share(text), text, encoding)
        for name in CHINESE:
            if name == encoding:
                continue
            try:
                other = data.decode(name)
            except UnicodeDecodeError:
                continue
            share = common_share(other)
            if share >= ENOUGH and share > chosen[0]:
                chosen = (share, other, name)
        _, text, encoding = chosen
    return text, encoding
