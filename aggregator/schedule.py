"""When the daemon refreshes what (the only module that uses APScheduler, 3.x).

One job per input on an interval trigger (`every`, with jitter so inputs with the same interval
spread out), at most one run of an input at a time, and missed runs coalesced into one. The job
store is in memory and private to this process (APScheduler's stores must not be shared): due
times, backoff and errors live in our store, and after each run the job's next run time is set
from there, so a restart, another daemon or an `aggregator sync` never cause a second fetch.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger("aggregator")

Job = Callable[[], Awaitable[None]]


class Schedule:
    def __init__(self, loop: asyncio.AbstractEventLoop, jitter: float):
        self.jitter = jitter
        self.scheduler = AsyncIOScheduler(
            event_loop=loop,
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.every: dict[str, timedelta] = {}
        self.stopped = False
        # APScheduler logs a warning each time a run is skipped because the previous one still
        # runs; here that is the intended behaviour, not news.
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)

    def add_input(self, name: str, job: Job, every: timedelta, first: datetime) -> None:
        """Refresh an input every `every`, the first time at `first`."""
        self.every[name] = every
        spread = every.total_seconds() * self.jitter
        self.scheduler.add_job(
            self._quiet_at_shutdown(job),
            IntervalTrigger(seconds=every.total_seconds(), jitter=spread or None, timezone=UTC),
            id=f"input:{name}",
            name=name,
            next_run_time=first,
        )

    def remove_input(self, name: str) -> None:
        """No more refreshes of this input (a run under way finishes)."""
        self.every.pop(name, None)
        if self.scheduler.get_job(f"input:{name}") is not None:
            self.scheduler.remove_job(f"input:{name}")

    def add_periodic(self, job_id: str, job: Job, every: timedelta) -> None:
        """Run `job` every `every` (replacing a periodic job of that id)."""
        self.scheduler.add_job(
            self._quiet_at_shutdown(job),
            IntervalTrigger(seconds=every.total_seconds(), timezone=UTC),
            id=job_id,
            name=job_id,
            replace_existing=True,
        )

    def run_soon(self, job_id: str, job: Job, delay: timedelta) -> None:
        """Run `job` once after `delay`, unless such a run is already waiting (a debounce:
        changes close together lead to one run)."""
        if self.scheduler.get_job(job_id) is None:
            self.scheduler.add_job(
                self._quiet_at_shutdown(job),
                "date",
                run_date=datetime.now(UTC) + delay,
                id=job_id,
                name=job_id,
            )

    def next_run(self, name: str, due: datetime | None, now: datetime) -> datetime:
        """Set the next refresh of an input from the store's due time (backoff, Retry-After,
        another process's run), spread by the jitter."""
        every = self.every.get(name)
        if every is None:  # removed from the configuration meanwhile
            return now
        when = due if due is not None else now + every
        when = max(when, now) + timedelta(seconds=random.uniform(0, self.jitter) * min(
            every.total_seconds(), 3600
        ))  # fmt: skip
        job = self.scheduler.get_job(f"input:{name}")
        if job is not None:
            job.modify(next_run_time=when)
        return when

    def stop_input(self, name: str) -> None:
        """An input that will never be due again (retired: 410 Gone)."""
        job = self.scheduler.get_job(f"input:{name}")
        if job is not None:
            job.pause()

    def _quiet_at_shutdown(self, job: Job) -> Job:
        """`job`, ended quietly when `shutdown` cancels it: APScheduler cancels the jobs it
        runs when it shuts down and would log each as an error, with a traceback. Only the
        wait is cut; what the job started (a refresh, a publish) goes on, and its owner waits
        for it."""

        async def run() -> None:
            try:
                await job()
            except asyncio.CancelledError:
                if not self.stopped:
                    raise

        return run

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        """Start no more jobs, and cancel those running (see `_quiet_at_shutdown`)."""
        self.stopped = True
        # A job cancelled before its first step never reaches `_quiet_at_shutdown`, and the
        # executor would log its CancelledError with a traceback: nothing it says now matters.
        logging.getLogger("apscheduler.executors.default").setLevel(logging.CRITICAL)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
