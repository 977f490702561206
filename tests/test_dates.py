"""Reading the dates people write in front matter: `normalise.dates`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.normalise.dates import from_epoch_ms, iso, parse_date

SHANGHAI = ZoneInfo("Asia/Shanghai")  # UTC+8, no daylight saving since 1991
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        # ISO 8601 with a zone: the zone written wins over the input's.
        pytest.param("2022-07-07T15:04:00.000Z", SHANGHAI, utc(2022, 7, 7, 15, 4), id="iso-z-ms"),
        pytest.param("2022-07-07T15:04:00Z", NEW_YORK, utc(2022, 7, 7, 15, 4), id="iso-z"),
        pytest.param("2022-07-10T09:30:00+08:00", UTC, utc(2022, 7, 10, 1, 30), id="iso-offset"),
        pytest.param("2022-07-10T09:30:00+0800", UTC, utc(2022, 7, 10, 1, 30), id="iso-offset-4"),
        pytest.param("2022-07-10 09:30:00 +08:00", UTC, utc(2022, 7, 10, 1, 30), id="space-zone"),
        pytest.param("2022-07-10 09:30:00 +0800", UTC, utc(2022, 7, 10, 1, 30), id="jekyll-date"),
        # Naive: read in the input's time zone.
        pytest.param("2022-07-10 09:30:00", SHANGHAI, utc(2022, 7, 10, 1, 30), id="naive-cst"),
        pytest.param("2022-07-10 09:30:00", UTC, utc(2022, 7, 10, 9, 30), id="naive-utc"),
        pytest.param("2022-07-10 09:30:00", NEW_YORK, utc(2022, 7, 10, 13, 30), id="naive-edt"),
        pytest.param("2022-01-10 09:30:00", NEW_YORK, utc(2022, 1, 10, 14, 30), id="naive-est"),
        pytest.param("2022-07-10T09:30", SHANGHAI, utc(2022, 7, 10, 1, 30), id="naive-no-seconds"),
        # Date only: midnight in the input's time zone.
        pytest.param("2022-07-20", SHANGHAI, utc(2022, 7, 19, 16), id="date-only-cst"),
        pytest.param("2022-07-20", UTC, utc(2022, 7, 20), id="date-only-utc"),
        # RFC 822.
        pytest.param(
            "Thu, 16 Sep 2021 10:19:20 GMT", SHANGHAI, utc(2021, 9, 16, 10, 19, 20), id="rfc822"
        ),
        pytest.param(
            "Thu, 16 Sep 2021 10:19:20 +0800", UTC, utc(2021, 9, 16, 2, 19, 20), id="rfc822-offset"
        ),
        pytest.param(
            "16 Sep 2021 10:19:20 GMT", SHANGHAI, utc(2021, 9, 16, 10, 19, 20), id="rfc822-no-day"
        ),
        # CJK and slashes (feedparser reads 2022年07月07日 as 2022-11-01).
        pytest.param("2022年07月07日", UTC, utc(2022, 7, 7), id="cjk-date"),
        pytest.param("2022年07月07日", SHANGHAI, utc(2022, 7, 6, 16), id="cjk-date-cst"),
        pytest.param("2022年7月7日 15:04", SHANGHAI, utc(2022, 7, 7, 7, 4), id="cjk-time"),
        pytest.param("2022年07月07日 15时04分", SHANGHAI, utc(2022, 7, 7, 7, 4), id="cjk-hour-min"),
        pytest.param("2022/07/07 15:04", SHANGHAI, utc(2022, 7, 7, 7, 4), id="slashes"),
        pytest.param("2022/7/7", UTC, utc(2022, 7, 7), id="slashes-date"),
        # Epoch numbers (seconds or milliseconds).
        pytest.param("1657206240000", SHANGHAI, utc(2022, 7, 7, 15, 4), id="epoch-ms"),
        pytest.param("1657206240", SHANGHAI, utc(2022, 7, 7, 15, 4), id="epoch-s"),
        # Whitespace around a value is not part of it.
        pytest.param("  2022-07-20  ", UTC, utc(2022, 7, 20), id="padded"),
    ],
)
def test_date_forms(value: str, tz, expected: datetime) -> None:
    result = parse_date(value, tz)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


# The timestamp forms of the YAML spec (1.1 and 1.2 §2.23 "timestamp"): front matter dates that
# YAML itself reads as datetimes must be read too. The expected values are the spec's.
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2001-12-15T02:59:43.1Z", utc(2001, 12, 15, 2, 59, 43, 100000), id="canon"),
        pytest.param(
            "2001-12-14t21:59:43.10-05:00", utc(2001, 12, 15, 2, 59, 43, 100000), id="iso8601"
        ),
        pytest.param(
            "2001-12-14 21:59:43.10 -5", utc(2001, 12, 15, 2, 59, 43, 100000), id="spaced"
        ),
        pytest.param(
            "2001-12-15 2:59:43.10", utc(2001, 12, 15, 2, 59, 43, 100000), id="no-zone-one-digit"
        ),
        pytest.param("2002-12-14", utc(2002, 12, 14), id="date"),
    ],
)
def test_yaml_spec_timestamps(value: str, expected: datetime) -> None:
    assert parse_date(value, UTC) == expected


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        pytest.param(datetime(2022, 7, 10, 9, 30, tzinfo=UTC), SHANGHAI, utc(2022, 7, 10, 9, 30)),
        pytest.param(
            datetime(2022, 7, 10, 9, 30, tzinfo=timezone(timedelta(hours=8))),
            UTC,
            utc(2022, 7, 10, 1, 30),
            id="aware-offset",
        ),
        pytest.param(datetime(2022, 7, 10, 9, 30), SHANGHAI, utc(2022, 7, 10, 1, 30), id="naive"),
        pytest.param(date(2022, 7, 20), SHANGHAI, utc(2022, 7, 19, 16), id="date"),
    ],
)
def test_date_objects(value, tz, expected: datetime) -> None:
    result = parse_date(value, tz)
    assert result == expected
    assert result.tzinfo is not None
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    [
        # Impossible dates are refused, never shifted (feedparser turns 2024-02-30 into 1 March).
        pytest.param("2024-02-30", id="feb-30"),
        pytest.param("2023-02-29", id="feb-29-not-leap"),
        pytest.param("2024-02-30 10:00:00", id="feb-30-time"),
        pytest.param("2024-02-30T10:00:00Z", id="feb-30-iso"),
        pytest.param("2024-13-01", id="month-13"),
        pytest.param("2024-04-31", id="april-31"),
        pytest.param("2024-01-01 25:00:00", id="hour-25"),
        pytest.param("2024年02月30日", id="cjk-feb-30"),
        pytest.param("2024/02/30", id="slash-feb-30"),
        pytest.param("Fri, 30 Feb 2024 10:00:00 GMT", id="rfc822-feb-30"),
        # Years nobody means.
        pytest.param("1800-01-01", id="year-1800"),
        pytest.param("9999-12-31", id="year-9999"),
        # ...including those past the last instant Python can hold once converted to UTC
        pytest.param("9999-12-31 23:00:00 -05:00", id="year-9999-west-of-utc"),
        pytest.param("Fri, 31 Dec 9999 23:00:00 -0500", id="rfc822-year-9999-west"),
        pytest.param("9999-12-31T23:00:00-05:00", id="iso-year-9999-west"),
        pytest.param(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))), id="obj"),
        pytest.param("0", id="zero"),
        # Not dates at all.
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("yesterday", id="word"),
        pytest.param("未知", id="cjk-word"),
        pytest.param("2022", id="year-only"),
        pytest.param(["2022-07-10"], id="a-list"),
        pytest.param({"date": "2022-07-10"}, id="a-mapping"),
        pytest.param(None, id="none"),
    ],
)
def test_refused_dates(value) -> None:
    with pytest.raises(ValueError):
        parse_date(value, UTC)


def test_feb_29_in_a_leap_year_is_fine() -> None:
    assert parse_date("2024-02-29", UTC) == utc(2024, 2, 29)


def test_from_epoch_ms_and_iso() -> None:
    assert from_epoch_ms(1_657_206_240_000) == utc(2022, 7, 7, 15, 4)
    assert from_epoch_ms(1_657_206_240_500) == utc(2022, 7, 7, 15, 4, 0, 500000)
    assert iso(utc(2022, 7, 7, 15, 4)) == "2022-07-07T15:04:00Z"
    cst = datetime(2022, 7, 7, 23, 4, tzinfo=SHANGHAI)
    assert iso(cst) == "2022-07-07T15:04:00Z"


# ---- properties ----------------------------------------------------------------------------------

offsets = st.integers(min_value=-14 * 4, max_value=14 * 4).map(
    lambda q: timezone(timedelta(minutes=15 * q))
)
aware = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2199, 1, 1)),
    offsets,
).map(lambda dt: dt.replace(microsecond=0))
zones = st.sampled_from([UTC, SHANGHAI, NEW_YORK, ZoneInfo("Europe/London")])


@settings(max_examples=60, deadline=None)
@given(dt=aware, tz=zones)
def test_iso_and_rfc822_round_trip(dt: datetime, tz) -> None:
    """A date written with its zone is the same instant whatever the input's zone is."""
    for text in (dt.isoformat(), dt.isoformat(sep=" "), format_datetime(dt)):
        result = parse_date(text, tz)
        assert result == dt, text
        assert result.utcoffset() == timedelta(0)


@settings(max_examples=60, deadline=None)
@given(
    naive=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2199, 1, 1)).map(
        lambda dt: dt.replace(microsecond=0)
    ),
    tz=st.sampled_from([UTC, SHANGHAI, timezone(timedelta(hours=-3, minutes=-30))]),
)
def test_naive_text_is_read_in_the_input_zone(naive: datetime, tz) -> None:
    expected = naive.replace(tzinfo=tz).astimezone(UTC)
    assert parse_date(naive.isoformat(sep=" "), tz) == expected
    assert parse_date(naive.strftime("%Y/%m/%d %H:%M:%S"), tz) == expected
    day = naive.date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    assert parse_date(day.isoformat(), tz) == midnight
    assert parse_date(f"{day.year}年{day.month:02d}月{day.day:02d}日", tz) == midnight
