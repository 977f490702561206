"""What the listing commands print on a terminal (rich tables), read as a person reads them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from aggregator import report
from aggregator.report import print_feeds, print_inputs

URL = "http://127.0.0.1:8000/tag/%E7%BB%8F%E6%B5%8E%E6%96%B0%E9%97%BB-and-a-long-tail.atom"


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listing believes it writes to an 80-column terminal (it draws tables only for one);
    what it draws is captured."""
    monkeypatch.setattr(report, "sys", SimpleNamespace(stdout=SimpleNamespace(isatty=lambda: True)))
    monkeypatch.setenv("COLUMNS", "80")


def test_feed_urls_are_never_cut(terminal: None, capsys: pytest.CaptureFixture[str]) -> None:
    print_feeds(
        [
            {
                "kind": "tag",
                "name": "经济新闻",
                "entries": 12,
                "updated": "2026-11-22T10:04:59+00:00",
                "urls": {"atom": URL},
            }
        ]
    )
    out = capsys.readouterr().out
    # whole, if folded onto several lines of its cell; never cut short with an ellipsis
    url = "".join(line.split("│")[-2].strip() for line in out.splitlines() if line[0] == "│")
    assert url == URL
    assert "2026-11-22 10:04" in out and "10:04:59" not in out


def test_input_times_are_short_and_counts_shown(
    terminal: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "140")
    print_inputs(
        [
            {
                "name": "radio",
                "kind": "feed",
                "status": "HTTP 404",
                "last_attempt": "2026-11-22T10:00:11.382544+00:00",
                "last_success": None,
                "error_count": 0,
                "next_due": "2026-11-22T10:05:11+00:00",
                "location": "http://127.0.0.1/f.xml",
                "last_error": None,
                "held_by": None,
            }
        ]
    )
    out = capsys.readouterr().out
    assert "2026-11-22 10:00" in out and "10:05" in out and ".382544" not in out
    assert "│ 0 " in out.replace("  ", " ")  # a count of zero is a zero, not blank
