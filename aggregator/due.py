"""When a live input is fetched next, and what a fetch does to its stored state (pure).

    after_fetch(state, outcome, now, policy) -> changes to store

- success (200 read, or 304): errors reset, next fetch after the input's interval;
- 410 Gone: the input is retired, and never fetched again until the config changes;
- 429 and 503: the server's `Retry-After` is honoured (never sooner than the backoff);
- any other failure: exponential backoff from `BACKOFF_BASE`, doubling per consecutive error, up
  to the cap; the input keeps being retried, never given up on silently;
- permanent redirects (301/308) move the stored URL only when the same target has answered for
  `moved_after_fetches` fetches over at least `moved_after`; 302/307 never do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

BACKOFF_BASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Policy:
    every: timedelta
    backoff_cap: timedelta = timedelta(days=1)
    moved_after: timedelta = timedelta(days=1)
    moved_after_fetches: int = 3


@dataclass(frozen=True, slots=True)
class FetchState:
    """What the store remembers of a live input between fetches."""

    input_id: int
    location: str
    """The URL in the configuration."""
    url: str | None = None
    """The URL a trusted permanent redirect moved the input to."""
    etag: str | None = None
    last_modified: str | None = None
    error_count: int = 0
    next_due_at: datetime | None = None
    moved_to: str | None = None
    moved_since: datetime | None = None
    moved_count: int = 0
    retired_at: datetime | None = None
    last_error: str | None = None
    read_settings: str | None = None
    """The settings the input's copies were read under (`normalise.settings_key`)."""

    @property
    def fetch_url(self) -> str:
        return self.url or self.location

    def waiting_note(self) -> str:
        """Why an input did not run: not due yet, and (when it is backing off) what failed."""
        assert self.next_due_at is not None
        note = f"not due until {self.next_due_at:%Y-%m-%d %H:%M} UTC"
        if self.error_count:
            failures = "1 failure" if self.error_count == 1 else f"{self.error_count} failures"
            last = f"; last: {self.last_error}" if self.last_error else ""
            note += f" (retrying after {failures}{last})"
        return note

    def due(self, now: datetime) -> bool:
        return self.retired_at is None and (self.next_due_at is None or self.next_due_at <= now)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A fetch as far as scheduling cares."""

    status: int
    """HTTP status; 0 for no response."""
    ok: bool
    """200 and the document was read, or 304."""
    error: str | None = None
    retry_after: float | None = None
    moved_permanently_to: str | None = None
    etag: str | None = None
    last_modified: str | None = None


def backoff(errors: int, cap: timedelta) -> timedelta:
    """Wait after `errors` consecutive failures: 5 min, 10, 20… up to `cap`."""
    return min(cap, BACKOFF_BASE * (2 ** min(max(errors - 1, 0), 20)))


def status_text(outcome: Outcome) -> str:
    if outcome.ok:
        return "not modified" if outcome.status == 304 else "ok"
    if outcome.status == 410:
        return "gone"
    if outcome.status == 429:
        return "rate limited"
    if outcome.status:
        return f"HTTP {outcome.status}"
    return "error"


def after_fetch(
    state: FetchState, outcome: Outcome, now: datetime, policy: Policy
) -> dict[str, Any]:
    """The input's stored columns that change after this fetch."""
    changes: dict[str, Any] = {
        "last_attempt_at": now,
        "http_status": outcome.status or None,
        "status": status_text(outcome),
    }
    if outcome.ok:
        changes.update(
            last_success_at=now,
            error_count=0,
            last_error=None,
            next_due_at=now + policy.every,
        )
        if outcome.status == 200:
            changes.update(etag=outcome.etag, last_modified=outcome.last_modified)
    elif outcome.status == 410:
        changes.update(
            retired_at=now,
            next_due_at=None,
            error_count=state.error_count + 1,
            last_error=outcome.error or "410 Gone: the feed was removed; the input is retired",
        )
    else:
        errors = state.error_count + 1
        wait = backoff(errors, policy.backoff_cap)
        if outcome.status in (429, 503) and outcome.retry_after is not None:
            wait = max(wait, timedelta(seconds=min(outcome.retry_after, 30 * 86400)))
        changes.update(
            error_count=errors,
            last_error=outcome.error or f"HTTP {outcome.status}",
            next_due_at=now + wait,
        )
        if outcome.status == 200:  # a document that could not be read keeps no validators
            changes.update(etag=None, last_modified=None)
    return changes | _moves(state, outcome, now, policy)


def _moves(state: FetchState, outcome: Outcome, now: datetime, policy: Policy) -> dict[str, Any]:
    target = outcome.moved_permanently_to
    if not target or target == state.fetch_url:
        if state.moved_to is None:
            return {}
        return {"moved_to": None, "moved_since": None, "moved_count": None}
    if target != state.moved_to:
        return {"moved_to": target, "moved_since": now, "moved_count": 1}
    count = state.moved_count + 1
    since = state.moved_since or now
    if count >= policy.moved_after_fetches and now - since >= policy.moved_after:
        return {"url": target, "moved_to": None, "moved_since": None, "moved_count": None}
    return {"moved_count": count}
