"""Reading the dates people write in front matter (pure functions).

Handles ISO 8601 (with or without zone, `T` or space, fractions, `Z`), date-only, RFC 822
(`Thu, 16 Sep 2021 10:19:20 GMT`), CJK forms (`2022年07月07日 15:04`) and slashes
(`2022/07/07 15:04`). A date without a zone is read in the input's time zone. Impossible
dates (`2024-02-30`) and years outside 1900–2200 are refused rather than silently shifted.
Every result is an aware datetime in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime

from yaml.constructor import SafeConstructor

_CJK = re.compile(
    r"(\d{4})\s*[年/.-]\s*(\d{1,2})\s*[月/.-]\s*(\d{1,2})\s*日?"
    r"(?:[\sT]*(\d{1,2})\s*[:時时点點]\s*(\d{1,2})\s*分?(?:\s*:?\s*(\d{1,2})\s*秒?)?)?\s*"
)
_EPOCH = re.compile(r"-?\d{9,13}")
# YAML's own timestamp form (`2001-12-14 21:59:43.10 -5`), which `fromisoformat` refuses.
_YAML_TIMESTAMP = SafeConstructor.timestamp_regexp
MIN_YEAR, MAX_YEAR = 1900, 2200
# `CST` and `IST` are US Central and Israel to the email parser, but far more often China and
# India Standard Time in the archives and feeds this reads: where the input sets a zone other
# than UTC, such a date is read in that zone instead (see `drop_ambiguous_zone`).
AMBIGUOUS_ZONE = re.compile(r"\s+(CST|IST)\s*$")


def drop_ambiguous_zone(value: object, zone: str | None) -> object:
    """`value` without a trailing `CST`/`IST` when the input's `zone` is set and is not UTC
    (it is then read in that zone); else `value` as it is. Posts and feed items alike."""
    if zone and zone != "UTC" and isinstance(value, str) and AMBIGUOUS_ZONE.search(value):
        return AMBIGUOUS_ZONE.sub("", value)
    return value


def parse_date(value: object, tz: tzinfo = UTC) -> datetime:
    """Read one date; raises ValueError with a short reason when it cannot."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime.combine(value, time())
    elif isinstance(value, str):
        result = _parse_text(value.strip())
    else:
        raise ValueError(f"not a date: {value!r}")
    if not MIN_YEAR <= result.year <= MAX_YEAR:  # before converting: 9999-12-31 23:00 -05:00
        raise ValueError(f"year {result.year} is out of range")  # is past datetime.max in UTC
    if result.tzinfo is None:
        result = result.replace(tzinfo=tz)
    result = result.astimezone(UTC)
    if not MIN_YEAR <= result.year <= MAX_YEAR:
        raise ValueError(f"year {result.year} is out of range")
    return result


def _parse_text(text: str) -> datetime:
    if not text:
        raise ValueError("empty date")
    if _EPOCH.fullmatch(text):
        number = int(text)
        try:
            return datetime.fromtimestamp(number / 1000 if abs(number) > 10**11 else number, UTC)
        except (OverflowError, OSError):
            raise ValueError(f"timestamp out of range: {text}") from None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    if text[:1].isdigit():
        stamp = _YAML_TIMESTAMP.match(text)
        if stamp:
            return _yaml_timestamp(stamp)
        match = _CJK.fullmatch(text)
        if match:
            y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
            return datetime(y, mo, d, h, mi, s)  # raises ValueError for 2024-02-30
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        pass
    raise ValueError(f"date not understood: {text!r}")


def _yaml_timestamp(m: re.Match[str]) -> datetime:
    g = m.groupdict()
    if g["hour"] is None:
        return datetime(int(g["year"]), int(g["month"]), int(g["day"]))
    fraction = int(((g["fraction"] or "") + "000000")[:6])
    tz: tzinfo | None = None
    if g["tz_sign"]:
        delta = timedelta(hours=int(g["tz_hour"]), minutes=int(g["tz_minute"] or 0))
        tz = timezone(-delta if g["tz_sign"] == "-" else delta)
    elif g["tz"]:
        tz = UTC
    return datetime(
        int(g["year"]), int(g["month"]), int(g["day"]),
        int(g["hour"]), int(g["minute"]), int(g["second"]), fraction, tzinfo=tz,
    )  # fmt: skip


def from_epoch_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso(dt: datetime) -> str:
    """Aware datetime as RFC 3339 UTC with a `Z`."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
