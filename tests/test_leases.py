"""Leases on inputs, on SQLite and PostgreSQL: one holder at a time, and claims of a process
that is gone are taken over."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from aggregator.leases import Leases, is_dead, owner_name
from aggregator.store import Store

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def make_inputs(store: Store, n: int) -> list[int]:
    ids = store.ensure_inputs([(f"in{i}", "feed", f"https://x.example/{i}") for i in range(n)], NOW)
    return sorted(ids.values())


def test_an_input_has_one_holder_until_released_or_expired(store: Store) -> None:
    ids = make_inputs(store, 3)
    later = NOW + timedelta(minutes=5)
    assert store.claim(ids, "a", NOW, later) == set(ids)
    assert store.claim(ids, "b", NOW, later) == set()
    assert store.claim(ids[:1], "a", NOW, later) == {ids[0]}  # a holder may claim again
    assert store.lease_holders(ids, NOW) == dict.fromkeys(ids, "a")
    store.release(ids[:1], "a")
    assert store.claim(ids, "b", NOW, later) == {ids[0]}
    store.release(ids[1:], "b")  # not b's to release
    assert store.lease_holders(ids, NOW) == {ids[0]: "b", ids[1]: "a", ids[2]: "a"}
    # Leases run out: a process that stopped renewing frees its inputs.
    after = later + timedelta(seconds=1)
    assert store.claim(ids, "c", after, after + timedelta(minutes=5)) == set(ids)


def test_claims_race_and_exactly_one_wins(store: Store, store_url: str) -> None:
    ids = make_inputs(store, 20)
    won: dict[str, set[int]] = {}
    start = threading.Barrier(4)

    def claim(name: str) -> None:
        other = Store.open(store_url)
        try:
            start.wait()
            now = datetime.now(UTC)
            won[name] = other.claim(ids, name, now, now + timedelta(minutes=1))
        finally:
            other.close()

    threads = [threading.Thread(target=claim, args=(f"p{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for got in won.values() for i in got]
    assert sorted(claimed) == ids  # every input claimed, none twice


def test_leases_of_a_killed_process_on_this_machine_are_taken_at_once(store: Store) -> None:
    ids = make_inputs(store, 2)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    gone = f"sync on {socket.gethostname()} (pid {proc.pid})"
    assert is_dead(gone)
    assert not is_dead(owner_name("serve"))  # this process
    assert not is_dead(f"sync on elsewhere.example (pid {proc.pid})")  # cannot tell: wait
    now = datetime.now(UTC)
    store.claim(ids[:1], gone, now, now + timedelta(hours=1))
    store.claim(ids[1:], "sync on elsewhere.example (pid 1)", now, now + timedelta(hours=1))
    leases = Leases(store, owner_name("serve"), timedelta(minutes=5))
    try:
        assert leases.claim(ids) == {ids[0]}
    finally:
        leases.close()
    assert store.lease_holders(ids, datetime.now(UTC)) == {
        ids[1]: "sync on elsewhere.example (pid 1)"
    }


def test_held_leases_are_renewed_while_the_work_goes_on(store: Store) -> None:
    ids = make_inputs(store, 1)
    leases = Leases(store, "worker", timedelta(seconds=0.6))
    try:
        assert leases.claim(ids) == set(ids)
        time.sleep(1.5)  # longer than the lease: only renewal keeps it
        now = datetime.now(UTC)
        assert store.claim(ids, "other", now, now + timedelta(minutes=1)) == set()
    finally:
        leases.close()
    now = datetime.now(UTC)
    assert store.claim(ids, "other", now, now + timedelta(minutes=1)) == set(ids)
