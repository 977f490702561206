"""End-to-end: the real `aggregator` command in a subprocess, on real SQLite files and folders."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import feedparser
import http_server as hs
import pytest
import yaml

from aggregator import cli
from aggregator.store.models import SCHEMA_REVISION

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
MAKE_CORPUS = REPO.parent / "shared" / "bench" / "make_corpus.py"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    """Run the CLI as a user would; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def write_config(folder: Path, **overrides: object) -> Path:
    config: dict[str, object] = {
        "database": "sqlite:///store.db",
        "output": "public",
        "site": {"title": "Test site", "base_url": "https://feeds.example.org/news/"},
        "inputs": [{"kind": "files", "path": "posts", "name": "archive"}],
    }
    config.update(overrides)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under `folder`: (inode, mtime_ns, bytes)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(folder))] = (st.st_ino, st.st_mtime_ns, path.read_bytes())
    return out


@pytest.fixture
def site(tmp_path: Path) -> Path:
    shutil.copytree(SEEDS, tmp_path / "posts")
    write_config(tmp_path)
    return tmp_path


def test_sync_publishes_seeds_as_feeds(site: Path) -> None:
    result = run("sync", cwd=site)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = site / "public"
    all_feed = feedparser.parse((out / "all.atom").read_bytes())
    assert not all_feed.bozo, all_feed.bozo_exception
    titles = [e.title for e in all_feed.entries]
    # newest first: the 2022 Zaobao post before the 2021 Guancha post
    assert titles == [
        "李作成与美参谋长联席会主席通话：要求停止美台军事勾连",
        "被曝_私联中方_，米利上将遭围攻，拜登力挺",
    ]
    zaobao = all_feed.entries[0]
    assert zaobao.link == "https://www.zaobao.com/realtime/china/story20220707-1290628"
    assert zaobao.id.startswith("urn:uuid:")
    assert zaobao.published == "2022-07-07T15:04:00+00:00"
    # the repeated [title](url) heading and the epoch comment are not part of the content
    body = zaobao.content[0].value
    assert "中共中央军委联合参谋部参谋长李作成星期四（7月7日）应约" in body
    assert "------" not in body and "<!--" not in body
    assert zaobao.summary.startswith("中共中央军委联合参谋部参谋长李作成")
    guancha = all_feed.entries[1]
    assert [t.term for t in guancha.tags] == ["新媒体", "观察者网", "首页"]
    assert guancha.published == "2021-09-16T10:19:20+00:00"
    enclosures = [link for link in guancha.links if link.rel == "enclosure"]
    assert enclosures and enclosures[0].type == "image/jpeg"
    assert guancha.media_thumbnail[0]["url"].endswith("20210916092736727.jpg")

    for rel in ("source/联合早报", "source/观察者网", "tag/新媒体", "tag/联合早报", "tag/首页"):
        for suffix in (".atom", ".rss", ".json"):
            assert (out / (rel + suffix)).is_file(), rel + suffix
    rss = feedparser.parse((out / "source" / "观察者网.rss").read_bytes())
    assert not rss.bozo and rss.version == "rss20"
    assert [e.title for e in rss.entries] == ["被曝_私联中方_，米利上将遭围攻，拜登力挺"]
    doc = json.loads((out / "tag" / "联合早报.json").read_text(encoding="utf-8"))
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert [i["title"] for i in doc["items"]] == [titles[0]]
    assert "summary: 2 new" in result.stdout or "2 new" in result.stdout


def test_feed_urls_are_valid_percent_encoded_uris(site: Path) -> None:
    assert run("sync", cwd=site).returncode == 0
    listing = json.loads(run("feeds", "--json", cwd=site).stdout)
    kinds = {(f["kind"], f["name"]) for f in listing}
    assert ("all", "Test site") in kinds
    assert ("source", "联合早报") in kinds and ("tag", "首页") in kinds
    for feed in listing:
        assert set(feed) == {"kind", "name", "entries", "updated", "files", "urls"}
        assert set(feed["files"]) == {"atom", "rss", "json"}
        for fmt, url in feed["urls"].items():
            assert url.startswith("https://feeds.example.org/news/")
            assert re.fullmatch(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", url), url
            assert Path(feed["files"][fmt]).is_file()
    source = next(f for f in listing if f["name"] == "联合早报" and f["kind"] == "source")
    assert source["urls"]["atom"].endswith("/source/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.atom")
    assert source["entries"] == 1
    assert source["updated"] == "2022-07-07T15:04:00Z"
    # the feed's self link is the URL the listing gives
    parsed = feedparser.parse(Path(source["files"]["atom"]).read_bytes())
    selfs = [link.href for link in parsed.feed.links if link.rel == "self"]
    assert selfs == [source["urls"]["atom"]]


def test_index_and_opml_list_every_feed(site: Path) -> None:
    assert run("sync", cwd=site).returncode == 0
    listing = json.loads(run("feeds", "--json", cwd=site).stdout)
    index = (site / "public" / "index.html").read_text(encoding="utf-8")
    discovered = re.findall(r'<link rel="alternate" type="([^"]+)"[^>]* href="([^"]+)"', index)
    expected = {(t, f["urls"][fmt]) for f in listing for fmt, t in (
        ("atom", "application/atom+xml"), ("rss", "application/rss+xml"),
        ("json", "application/feed+json"),
    )}  # fmt: skip
    assert set(discovered) == expected
    from xml.etree import ElementTree as ET  # OPML is plain XML

    root = ET.fromstring((site / "public" / "feeds.opml").read_bytes())
    urls = {o.get("xmlUrl") for o in root.iter("outline") if o.get("xmlUrl")}
    assert urls == {f["urls"]["atom"] for f in listing}


def test_second_sync_writes_nothing_and_rebuild_is_byte_identical(site: Path) -> None:
    assert run("sync", cwd=site).returncode == 0
    before = snapshot(site / "public")
    again = run("-v", "sync", cwd=site)
    assert again.returncode == 0
    assert "0 files written" in again.stdout
    # nothing rendered, not merely nothing written
    assert re.search(
        r"published in \S+s: 0 of 7 feeds rendered again, 0 files written", again.stderr
    )
    assert snapshot(site / "public") == before  # same inode, mtime and bytes: nothing written

    # Delete the database and the output, sync again: the same ids and dates, the same bytes.
    for p in site.glob("store.db*"):
        p.unlink()
    shutil.rmtree(site / "public")
    assert run("sync", cwd=site).returncode == 0
    rebuilt = snapshot(site / "public")
    assert {k: v[2] for k, v in rebuilt.items()} == {k: v[2] for k, v in before.items()}


def test_changed_post_moves_only_its_entry(site: Path) -> None:
    assert run("sync", cwd=site).returncode == 0
    before = snapshot(site / "public")
    post = site / "posts" / "001_5d55ed8ea138fb0a.txt"
    post.write_text(
        post.read_text(encoding="utf-8") + "\n<p>更正：本文已更新。</p>\n", encoding="utf-8"
    )
    result = run("sync", cwd=site)
    assert result.returncode == 0
    assert "1 updated" in result.stdout
    after = snapshot(site / "public")
    changed = {k for k in after if after[k][2] != before.get(k, (0, 0, b""))[2]}
    # the everything feed, the Zaobao source and tag feeds, and the index changed; Guancha's not
    assert "all.atom" in changed and "source/联合早报.atom" in changed
    assert not any("观察者网" in k for k in changed)
    feed = feedparser.parse(after["all.atom"][2])
    zaobao = next(e for e in feed.entries if "zaobao" in e.link)
    assert "更正：本文已更新。" in zaobao.content[0].value
    assert zaobao.updated != zaobao.published  # a real change moved `updated`
    guancha = next(e for e in feed.entries if "zaobao" not in e.link)
    assert guancha.updated == guancha.published
    # and the next sync, with nothing new, renders no feed at all (not just writes none)
    quiet = run("-v", "sync", cwd=site)
    assert re.search(r"published in \S+s: 0 of \d+ feeds rendered again, 0 files", quiet.stderr)


def test_touching_files_changes_nothing_published(site: Path) -> None:
    assert run("sync", cwd=site).returncode == 0
    before = snapshot(site / "public")
    for post in (site / "posts").iterdir():
        os.utime(post, ns=(time.time_ns(), time.time_ns()))
    result = run("sync", cwd=site)
    assert result.returncode == 0
    assert snapshot(site / "public") == before


BAD_POSTS = {
    "bad-yaml.md": ("---\ntitle: [unclosed\n---\nbody\n", "malformed YAML"),
    "binary.md": (b"\x00\x01\x02\x03" * 100, "binary"),
    "no-front-matter.md": ("Just some text.\n", "no front matter"),
    "no-title.md": ("---\nauthor: someone\n---\nbody\n", "no title"),
    "list-front-matter.md": ("---\n- a\n- b\n---\nbody\n", "not a mapping"),
}


def test_files_that_are_not_posts_are_reported_and_skipped(site: Path) -> None:
    for name, (content, _) in BAD_POSTS.items():
        target = site / "posts" / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    result = run("sync", cwd=site)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert len(lines) == len(BAD_POSTS)
    for name, (_, reason) in BAD_POSTS.items():
        line = next(line for line in lines if name in line)
        assert line.startswith(f"skipped {Path('posts') / name}: ")
        assert reason in line
    assert "2 new" in result.stdout and "5 skipped" in result.stdout
    # the summary line counts every skipped file, the three commonest reasons by name
    (summary,) = [line for line in result.stdout.splitlines() if "5 skipped" in line]
    counts = [int(n) for n in re.findall(r"(\d+)×", summary)]
    assert sum(counts) == 5 and "other reason" in summary, summary
    feed = feedparser.parse((site / "public" / "all.atom").read_bytes())
    assert len(feed.entries) == 2


def test_missing_folder_fails_that_input_only(site: Path) -> None:
    write_config(
        site,
        inputs=[
            {"kind": "files", "path": "nowhere", "name": "gone"},
            {"kind": "files", "path": "posts", "name": "archive"},
        ],
    )
    result = run("sync", cwd=site)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert re.search(r"error: input gone: .*nowhere: input folder does not exist", result.stderr)
    assert "archive: 2 new" in result.stdout
    assert len(feedparser.parse((site / "public" / "all.atom").read_bytes()).entries) == 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"inputs": [{"kind": "files", "path": "p", "colour": "red"}]}, "inputs[0].colour: unkno"),
        ({"inputs": [{"kind": "files"}]}, "inputs[0].path: required key is missing"),
        ({"inputs": [{"kind": "ftp", "path": "p"}]}, "inputs[0]: `kind` must be one of"),
        ({"feeds": {"entries": "many"}}, "feeds.entries:"),
        ({"site": {"base_url": "example.org"}}, "site.base_url: must be an absolute"),
        ({"inputs": [{"kind": "files", "path": "p", "timezone": "Mars/Olympus"}]}, "unknown time"),
        ({"databse": "sqlite:///x.db"}, "databse: unknown key"),
        ({"database": "nonsense"}, "database: must be a SQLite or PostgreSQL URL"),
        ({"database": "mysql://u@127.0.0.1/x"}, "database: must be a SQLite or PostgreSQL URL"),
        ({"database": "postgresql+asyncpg://h/d"}, "database: PostgreSQL is used through psycopg"),
        ({"inputs": [{"kind": "files", "path": "p"}, {"kind": "feed", "url": "https://a.example/"},
                     {"kind": "origin", "selectors": {"127.0.0.1": "div[[ bad"}}]},
         "inputs[2].selectors.127.0.0.1: invalid CSS selector 'div[[ bad': Expected ident"),
        ({"inputs": [{"kind": "files", "path": "p", "every": -5}]}, "inputs[0].every: must be mo"),
        ({"fetch": {"timeout": 0}}, "fetch.timeout: must be more than 0"),
        ({"feeds": {"entries": "50"}}, "feeds.entries: must be a whole number, not the string"),
        ({"fetch": {"allow_private_networks": "yes"}}, "allow_private_networks: must be true or f"),
    ],
    ids=["unknown-key", "missing-path", "bad-kind", "wrong-type", "relative-base", "bad-zone",
         "typo-top-level", "db-not-a-url", "db-unsupported", "db-other-driver", "bad-selector",
         "negative-every", "zero-timeout", "quoted-number", "quoted-boolean"],
)  # fmt: skip
def test_bad_config_is_one_line_with_the_key_path(
    tmp_path: Path, config: dict[str, object], message: str
) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for command in (["check"], ["sync"]):
        result = run(*command, cwd=tmp_path)
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert message in result.stderr


def test_config_file_is_chosen_by_option_or_environment(site: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = site / "config.yaml"
    assert run("--config", str(config), "sync", cwd=elsewhere).returncode == 0
    assert (site / "public" / "all.atom").is_file()  # paths are relative to the config file
    env = {"AGGREGATOR_CONFIG": str(config)}
    result = run("check", cwd=elsewhere, env=env)
    assert result.returncode == 0 and "input archive: files" in result.stdout
    missing = run("--config", "nope.yaml", "check", cwd=elsewhere)
    assert missing.returncode == 2
    assert missing.stderr == (
        f"error: nope.yaml: config file not found (looked for {elsewhere / 'nope.yaml'}); "
        "choose one with --config PATH or AGGREGATOR_CONFIG\n"
    )


def test_global_options_may_follow_the_command(site: Path, tmp_path: Path) -> None:
    """`aggregator sync -v --config c.yaml` works as `aggregator -v --config c.yaml sync`."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(site / "config.yaml")
    result = run("sync", "-v", "--config", config, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "decided entries in" in result.stderr  # -v: the stages' log
    assert run("check", f"--config={config}", cwd=elsewhere).returncode == 0
    # the program's options move before the command; after `--`, nothing moves
    order = cli.main._global_options_first
    assert order(["--config", "sync", "check", "-v"]) == ["-v", "--config", "sync", "check"]
    assert order(["add", "--", "-v"]) == ["add", "--", "-v"]


def test_a_yaml_mistake_names_the_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("output: [public\ninputs: []\n", encoding="utf-8")
    result = run("check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: config.yaml:2:7: not valid YAML: did not find expected ',' or ']' "
        "(while parsing a flow sequence at line 1)\n"
    )


def test_unreachable_database_is_one_line_exit_1(site: Path) -> None:
    write_config(site, database="postgresql://nobody@127.0.0.1:1/none")
    result = run("sync", cwd=site)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "database unreachable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_database_folder_that_cannot_be_made_is_one_line_exit_1(site: Path) -> None:
    (site / "blocker").write_text("a file where the database's folder should be")
    write_config(site, database="sqlite:///blocker/store.db")
    result = run("sync", cwd=site)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"error: {site / 'blocker' / 'store.db'}: cannot create the database's folder (File exists)"
    )


def test_db_upgrade_creates_the_schema(site: Path) -> None:
    result = run("db", "upgrade", cwd=site)
    assert result.returncode == 0, result.stderr
    assert f"schema at revision {SCHEMA_REVISION}" in result.stdout
    assert (site / "store.db").is_file()


def test_help_and_version_on_every_command(tmp_path: Path) -> None:
    from aggregator import __version__

    version = run("--version", cwd=tmp_path)
    assert version.returncode == 0 and __version__ in version.stdout
    for command in ([], ["sync"], ["feeds"], ["check"], ["db"], ["db", "upgrade"]):
        result = run(*command, "--help", cwd=tmp_path)
        assert result.returncode == 0, command
        assert "Usage: aggregator" in result.stdout
    bad = run("frobnicate", cwd=tmp_path)
    assert bad.returncode == 2 and "No such command" in bad.stderr
    only = run("sync", "--only", "nothing", cwd=tmp_path)
    assert only.returncode == 2  # no config here: a clear config error, not a traceback
    assert "Traceback" not in only.stderr


@pytest.mark.parametrize(
    ("args", "names", "see"),
    [
        (["--config", "{tmp}", "sync"], ["--config", "{tmp}", "is a directory"], "aggregator"),
        (["sync", "--workers", "0"], ["--workers", "0 is not in the range 1<=x<=64"],
         "aggregator sync"),
        (["feeds", "--bogus"], ["No such option", "--bogus"], "aggregator feeds"),
        (["db", "bogus"], ["No such command", "bogus"], "aggregator db"),
        (["add"], ["Missing argument", "URL"], "aggregator add"),
    ],
    ids=["config-is-a-folder", "workers-out-of-range", "unknown-option", "unknown-subcommand",
         "missing-argument"],
)  # fmt: skip
def test_usage_errors_are_one_line_exit_2(
    tmp_path: Path, args: list[str], names: list[str], see: str
) -> None:
    """One line naming the argument and the reason, and where the help is (click's own
    display takes four: usage, hint, a blank line, the error)."""
    result = run(*(a.format(tmp=tmp_path) for a in args), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and line.endswith(f" (see `{see} --help`)")
    for name in names:
        assert name.format(tmp=tmp_path) in line


def test_no_command_still_shows_the_help(tmp_path: Path) -> None:
    result = run(cwd=tmp_path)
    assert "Usage: aggregator [OPTIONS] COMMAND" in result.stdout + result.stderr
    assert "sync" in result.stdout + result.stderr


def test_only_runs_the_named_input(site: Path, tmp_path: Path) -> None:
    other = site / "other"
    other.mkdir()
    (other / "x.md").write_text("---\ntitle: Other post\ndate: 2023-01-02\n---\nHello\n")
    write_config(
        site,
        inputs=[
            {"kind": "files", "path": "posts", "name": "archive"},
            {"kind": "files", "path": "other", "name": "other", "source": "Other"},
        ],
    )
    result = run("sync", "--only", "other", cwd=site)
    assert result.returncode == 0, result.stderr
    assert "other: 1 new" in result.stdout and "archive" not in result.stdout
    unknown = run("sync", "--only", "missing", cwd=site)
    assert unknown.returncode == 2 and "no input has that name" in unknown.stderr


def make_corpus(folder: Path, posts: int) -> tuple[Path, int]:
    """A generated archive and its number of distinct articles (from the manifest)."""
    if not MAKE_CORPUS.is_file():
        pytest.fail(f"{MAKE_CORPUS} is missing: the shared/ folder must sit beside the repo")
    manifest = folder / "manifest.tsv"
    subprocess.run(
        [sys.executable, str(MAKE_CORPUS), "--posts", str(posts), "--out", str(folder / "posts"),
         "--manifest", str(manifest), "--seed", "7"],
        check=True, capture_output=True,
    )  # fmt: skip
    articles = {line.split("\t")[1] for line in manifest.read_text().splitlines()[1:] if line}
    return folder / "posts", len(articles)


def test_generated_archive_dedupes_to_one_entry_per_article(tmp_path: Path) -> None:
    _, articles = make_corpus(tmp_path, 2500)
    write_config(tmp_path, feeds={"entries": 20})
    result = run("sync", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"entries: {articles} in store" in result.stdout
    listing = json.loads(run("feeds", "--json", cwd=tmp_path).stdout)
    everything = next(f for f in listing if f["kind"] == "all")
    assert everything["entries"] == articles
    feed = feedparser.parse(Path(everything["files"]["atom"]).read_bytes())
    assert len(feed.entries) == 20 and not feed.bozo
    ids = [e.id for e in feed.entries]
    assert len(set(ids)) == 20
    dates = [e.published_parsed for e in feed.entries]
    assert dates == sorted(dates, reverse=True)
    for tag_feed in (f for f in listing if f["kind"] == "tag"):
        parsed = feedparser.parse(Path(tag_feed["files"]["rss"]).read_bytes())
        assert len(parsed.entries) == min(20, tag_feed["entries"])
        assert all(tag_feed["name"] in [t.term for t in e.tags] for e in parsed.entries)


def test_killed_sync_leaves_a_store_the_next_sync_completes(tmp_path: Path) -> None:
    """Kill -9 at several moments; the next sync must give exactly a clean run's output."""
    _, articles = make_corpus(tmp_path, 2500)
    clean = tmp_path / "clean"
    clean.mkdir()
    write_config(clean, inputs=[{"kind": "files", "path": str(tmp_path / "posts")}])
    assert run("sync", cwd=clean, timeout=300).returncode == 0
    expected = {k: v[2] for k, v in snapshot(clean / "public").items()}

    for n, delay in enumerate((0.8, 1.6, 2.4)):
        work = tmp_path / f"kill{n}"
        work.mkdir()
        write_config(work, inputs=[{"kind": "files", "path": str(tmp_path / "posts")}])
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "sync", "--workers", "2"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        result = run("sync", cwd=work, timeout=300)
        assert result.returncode == 0, result.stderr
        assert f"entries: {articles} in store" in result.stdout
        got = {k: v[2] for k, v in snapshot(work / "public").items()}
        assert got == expected, f"kill after {delay}s: output differs from a clean run"


@pytest.mark.postgres
def test_postgresql_store_publishes_the_same_bytes_as_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    """The real CLI on a real PostgreSQL server: same feeds, byte for byte, as on SQLite."""
    _, articles = make_corpus(tmp_path, 800)
    outputs = {}
    for name, database in (("sqlite", "sqlite:///store.db"), ("postgresql", postgres_url)):
        work = tmp_path / name
        work.mkdir()
        write_config(
            work, database=database, inputs=[{"kind": "files", "path": str(tmp_path / "posts")}]
        )
        result = run("sync", cwd=work, timeout=300)
        assert result.returncode == 0, result.stderr
        assert f"entries: {articles} in store" in result.stdout
        again = run("sync", cwd=work, timeout=300)
        assert "0 files written" in again.stdout
        outputs[name] = {k: v[2] for k, v in snapshot(work / "public").items()}
    assert outputs["postgresql"] == outputs["sqlite"]


def test_deleted_post_leaves_every_feed_and_empty_feeds_are_removed(site: Path) -> None:
    assert run("sync", cwd=site).returncode == 0
    (site / "posts" / "000_c76d9f67d6ff494c.txt").unlink()  # the only Guancha post
    result = run("sync", cwd=site)
    assert result.returncode == 0, result.stderr
    assert "1 removed" in result.stdout
    assert "entries: 1 in store (0 new, 0 updated, 1 removed)" in result.stdout
    out = site / "public"
    titles = [e.title for e in feedparser.parse((out / "all.atom").read_bytes()).entries]
    assert titles == ["李作成与美参谋长联席会主席通话：要求停止美台军事勾连"]
    # its source and tags had no other entry: their feeds are gone, and so are the links
    for stem in ("source/观察者网", "tag/新媒体", "tag/首页", "tag/观察者网"):
        assert not any((out / (stem + s)).exists() for s in (".atom", ".rss", ".json")), stem
    listing = json.loads(run("feeds", "--json", cwd=site).stdout)
    assert {f["name"] for f in listing} == {"Test site", "联合早报"}
    assert "观察者网" not in (out / "index.html").read_text(encoding="utf-8")


def test_renamed_post_keeps_its_entry_id_and_dates(site: Path) -> None:
    assert run("sync", cwd=site).returncode == 0
    before = feedparser.parse((site / "public" / "all.atom").read_bytes()).entries
    posts = site / "posts"
    (posts / "archive" / "2022").mkdir(parents=True)
    (posts / "001_5d55ed8ea138fb0a.txt").rename(posts / "archive" / "2022" / "zaobao.md")
    result = run("sync", cwd=site)
    assert result.returncode == 0
    assert "1 new" in result.stdout and "1 removed" in result.stdout
    assert "entries: 2 in store (0 new, 0 updated, 0 removed)" in result.stdout
    after = feedparser.parse((site / "public" / "all.atom").read_bytes()).entries
    assert [(e.id, e.updated, e.title) for e in after] == [
        (e.id, e.updated, e.title) for e in before
    ]


def test_dropping_a_format_removes_its_files(site: Path) -> None:
    assert run("sync", cwd=site).returncode == 0
    assert (site / "public" / "all.json").is_file()
    write_config(site, feeds={"formats": ["atom", "rss"]})
    assert run("sync", cwd=site).returncode == 0
    assert [p.name for p in (site / "public").rglob("*.json")] == [".aggregator-manifest.json"]
    assert (site / "public" / "all.atom").is_file() and (site / "public" / "all.rss").is_file()
    assert "all.json" not in (site / "public" / "index.html").read_text(encoding="utf-8")


def test_output_path_that_is_a_file_is_one_line_exit_1(site: Path) -> None:
    (site / "public").write_text("not a folder")
    result = run("sync", cwd=site)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {site / 'public'}: the output folder is a file, not a folder"
    )
    assert "Traceback" not in result.stderr


def _sigint_default() -> None:
    """In the child, Ctrl-C as a terminal gives it: a test run started in the background
    (`make test &`, nohup) ignores SIGINT, and a child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_cleanly_and_the_next_sync_finishes(tmp_path: Path) -> None:
    _, articles = make_corpus(tmp_path, 2500)
    with hs.serve() as server:
        # A feed that dribbles a byte a second holds the run after the posts: Ctrl-C comes
        # mid-run however fast the machine reads them.
        slow = server.route("/slow.xml", hs.drip(1.0))
        write_config(
            tmp_path,
            fetch={"allow_private_networks": True, "timeout": "20s"},
            inputs=[
                {"kind": "files", "path": "posts", "name": "archive"},
                {"kind": "feed", "url": slow, "name": "slow"},
            ],
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "sync", "--workers", "2"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, preexec_fn=_sigint_default,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not server.hits("/slow.xml") and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: the store is consistent")
    write_config(tmp_path)  # the archive alone: the slow feed would fail the next run
    result = run("sync", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"entries: {articles} in store" in result.stdout
