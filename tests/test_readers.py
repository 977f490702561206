"""Real feed readers subscribe to a running `aggregator serve`: newsboat and sfeed (Debian
packages; `.ci/run` installs them). They get every entry, and a reload costs a 304."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import daemon_process as dp
import pytest
from test_daemon import SEEDS, wait_for_file, write_config

SKIP_ENV = "AGGREGATOR_SKIP_READERS"


def need(program: str) -> str:
    path = shutil.which(program)
    if path:
        return path
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1 and {program} is not installed")
    pytest.fail(
        f"{program} is not installed (apt-get install newsboat sfeed), or set {SKIP_ENV}=1 "
        "to skip the feed reader tests knowingly",
        pytrace=False,
    )


def not_modified(d: dp.Daemon) -> int:
    text = d.get("/metrics")[2].decode()
    return int(float(re.search(r"^aggregator_http_not_modified_total (\S+)$", text, re.M)[1]))  # type: ignore[index]


@pytest.fixture
def daemon(tmp_path: Path):  # type: ignore[no-untyped-def]
    shutil.copytree(SEEDS, tmp_path / "posts")
    with dp.running(write_config(tmp_path)) as d:
        wait_for_file(d, "/news/all.atom", b"<entry>")
        wait_for_file(d, "/news/all.rss", b"<item>")
        yield d
        assert d.stop() == 0


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_newsboat_subscribes_and_reloads_with_a_304(
    daemon: dp.Daemon, tmp_path: Path, fmt: str
) -> None:
    newsboat = need("newsboat")
    home = tmp_path / "newsboat"
    home.mkdir()
    (home / "urls").write_text(daemon.url(f"/news/all.{fmt}") + "\n")
    (home / "config").write_text("")

    commands = ["reload", "print-unread"]

    def reload() -> str:
        done = subprocess.run(
            [newsboat, "-u", "urls", "-c", "cache.db", "-C", "config", "-x", *commands],
            cwd=home,
            env={**os.environ, "HOME": str(home), "LANG": "C.UTF-8"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert reload() == "2 unread articles"
    with sqlite3.connect(home / "cache.db") as cache:
        titles = {t for (t,) in cache.execute("SELECT title FROM rss_item")}
    served = daemon.get(f"/news/all.{fmt}")[2].decode()
    assert len(titles) == 2 and all(t in served for t in titles)
    # newsboat 2.21 keeps a feed's validators from its second fetch on (its first fetch
    # stores them before the feed has a row in its cache), so the third reload is the first
    # conditional one.
    time.sleep(1.1)
    reload()
    before = not_modified(daemon)
    time.sleep(1.1)  # newsboat keeps Last-Modified to the second
    assert reload() == "2 unread articles"
    assert not_modified(daemon) == before + 1


def test_sfeed_subscribes_and_reloads_with_a_304(daemon: dp.Daemon, tmp_path: Path) -> None:
    sfeed_update = need("sfeed_update")
    home = tmp_path / "sfeed"
    (home / "feeds").mkdir(parents=True)
    # sfeed_update's own fetch is unconditional; sfeedrc overrides it, here with curl keeping
    # the ETag beside the feed (sfeedrc(5)'s If-Modified-Since example cannot be used: the
    # feed file is created just before the first fetch, which then asks "modified since now?").
    (home / "sfeedrc").write_text(
        f'sfeedpath="{home}/feeds"\n'
        "feeds() {\n"
        f'  feed "aggregator" "{daemon.url("/news/all.atom")}"\n'
        "}\n"
        "fetch() {\n"
        '  curl -L --max-redirs 0 -f -s -m 15 --etag-compare "$3.etag" --etag-save "$3.etag" '
        '"$2" 2>/dev/null\n'
        "}\n"
    )

    def update() -> list[str]:
        done = subprocess.run(
            [sfeed_update, str(home / "sfeedrc")],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(home)},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return (home / "feeds" / "aggregator").read_text(encoding="utf-8").splitlines()

    rows = update()
    assert len(rows) == 2
    served = wait_for_file(daemon, "/news/all.atom", b"<entry>").decode()
    links = []
    for row in rows:
        fields = row.split("\t")
        title, link, entry_id = fields[1], fields[2], fields[5]
        assert title and title in served
        assert entry_id.startswith("urn:uuid:") and entry_id in served
        if link:  # one seed post names no original URL
            links.append(link)
            assert link.replace("&", "&amp;") in served
    assert links
    before = not_modified(daemon)
    time.sleep(1.1)
    assert update() == rows
    assert not_modified(daemon) == before + 1
