"""The commands for live inputs, run as a user runs them, against real servers on 127.0.0.1:
`inputs`, `discover`, `add`, `import-opml`, and `sync` with a failing feed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import http_server as hs
import pytest
import yaml
from test_cli import run

FEED = (
    b"<?xml version='1.0'?><rss version='2.0'><channel><title>Radio Four</title>"
    b"<link>https://radio.example/</link><item><title>Episode</title>"
    b"<link>https://radio.example/e/1</link><description>Talk</description></item>"
    b"</channel></rss>"
)
PAGE = (
    b"<html><head><title>Radio</title>"
    b"<link rel='alternate' type='application/rss+xml' href='/feed.xml' title='RSS'>"
    b"</head><body>hello</body></html>"
)
CONFIG = """\
# my feeds (this comment must survive `aggregator add`)
database: sqlite:///store.db
output: public
fetch:
  allow_private_networks: true  # the tests' servers are on 127.0.0.1
inputs: []
"""


def setup(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def configured(folder: Path) -> list[dict[str, object]]:
    return yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))["inputs"]


def test_discover_lists_the_feed_a_page_links_to(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    with hs.serve() as server:
        feed_url = server.route("/feed.xml", hs.static(FEED))
        page = server.route("/", hs.static(PAGE, "text/html; charset=utf-8"))
        result = run("discover", page, cwd=folder)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{feed_url}\tRadio Four\t1 items\n"
        assert configured(folder) == []  # discover changes nothing


def test_add_writes_the_feed_into_the_config_and_keeps_comments(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    with hs.serve() as server:
        feed_url = server.route("/feed.xml", hs.static(FEED))
        page = server.route("/", hs.static(PAGE, "text/html"))
        result = run("add", page, "--tag", "audio", cwd=folder)
        assert result.returncode == 0, result.stderr
        assert "added feed 'Radio Four'" in result.stdout
        # what to do next: fetch it now, or let a running daemon take it up
        assert result.stdout.splitlines()[-2:] == [
            "run `aggregator sync` to fetch it now",
            "a running `aggregator serve` takes it up on SIGHUP (`systemctl reload aggregator`)",
        ]
        again = run("add", feed_url, cwd=folder)
        assert again.returncode == 0 and "already in" in again.stdout
        same = run("add", feed_url, "--name", "Radio Four", cwd=folder)
        assert same.returncode == 0 and "already in" in same.stdout
        server.route("/other.xml", hs.static(FEED))
        taken = run("add", server.url("/other.xml"), "--name", "Radio Four", cwd=folder)
        assert taken.returncode == 2 and taken.stdout == ""
        assert taken.stderr == "error: --name Radio Four: another input has that name\n"
        text = (folder / "config.yaml").read_text(encoding="utf-8")
        assert "# my feeds (this comment must survive" in text
        assert "# the tests' servers are on 127.0.0.1" in text
        assert configured(folder) == [
            {"kind": "feed", "url": feed_url, "name": "Radio Four", "tags": ["audio"]}
        ]
        synced = run("sync", cwd=folder)
        assert synced.returncode == 0, synced.stderr
        listing = json.loads(run("inputs", "--json", cwd=folder).stdout)
    assert listing[0]["name"] == "Radio Four" and listing[0]["status"] == "ok"
    assert listing[0]["next_due"] and listing[0]["error_count"] == 0


def test_add_a_page_without_feeds_fails_in_one_line(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    with hs.serve() as server:
        page = server.route("/", hs.static(b"<html><body>no feeds</body></html>", "text/html"))
        result = run("add", page, cwd=folder)
    assert result.returncode == 1
    assert result.stderr == f"error: {page}: no feed found there\n"
    assert configured(folder) == []


CUT_ATOM = (
    b"<?xml version='1.0' encoding='utf-8'?>\n<feed xmlns='http://www.w3.org/2005/Atom'>"
    b"<title>Cut Site</title><id>urn:cut</id><updated>2022-07-12T00:00:00Z</updated>\n"
    b"<en"
)


@pytest.mark.parametrize("cut", [len(CUT_ATOM), 60], ids=["before-first-entry", "in-root-tag"])
def test_add_refuses_a_feed_that_cannot_be_read(tmp_path: Path, cut: int) -> None:
    folder = setup(tmp_path)
    with hs.serve() as server:
        server.route("/feed.xml", hs.static(FEED))  # another feed at a usual path: not this one
        broken = server.route("/broken.xml", hs.static(CUT_ATOM[:cut]))
        result = run("add", broken, cwd=folder)
        listed = run("discover", broken, cwd=folder)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {broken}: not ")
    assert "unclosed token" in result.stderr and len(result.stderr.splitlines()) == 1
    assert configured(folder) == []
    assert (listed.returncode, listed.stdout, listed.stderr) == (1, "", result.stderr)


def test_add_warns_of_a_feed_read_leniently(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    with hs.serve() as server:
        url = server.route("/feed.xml", hs.static(FEED.replace(b"Episode", b"Q & A")))
        result = run("add", url, cwd=folder)
    assert result.returncode == 0 and "added feed 'Radio Four'" in result.stdout
    assert result.stderr.startswith(f"warning: {url}: not well-formed, read leniently (")


def test_json_that_is_not_a_json_feed_is_searched_like_a_page(tmp_path: Path) -> None:
    """A site's JSON API (`/wp-json/`) is no feed: the feed at the site's usual path is."""
    folder = setup(tmp_path)
    with hs.serve() as server:
        feed_url = server.route("/feed.xml", hs.static(FEED))
        api = server.route(
            "/wp-json/", hs.static(b'{"name": "Radio", "routes": {}}', "application/json")
        )
        listed = run("discover", api, cwd=folder)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == f"{feed_url}\tRadio Four\t1 items\n"


def test_add_and_discover_say_when_the_feed_is_not_at_the_url(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    with hs.serve() as server:
        feed_url = server.route("/feed.xml", hs.static(FEED))
        server.route("/rss", hs.redirect(301, feed_url))  # the same feed by another path
        text = server.route("/notfeed.txt", hs.static(b"just some notes", "text/plain"))
        listed = run("discover", text, cwd=folder)
        added = run("add", text, cwd=folder)
        again = run("add", text, cwd=folder)
    note = f"no feed at {text}; found one at {feed_url}"
    assert listed.returncode == 0 and listed.stderr == note + "\n"
    assert listed.stdout == f"{feed_url}\tRadio Four\t1 items\n"
    assert added.returncode == 0
    assert added.stdout.splitlines()[:2] == [
        note,
        f"added feed 'Radio Four': {feed_url} (1 items) to config.yaml",
    ]
    assert again.stdout.splitlines() == [note, f"{feed_url} is already in config.yaml"]
    assert [i["url"] for i in configured(folder)] == [feed_url]


def test_add_with_another_config_file_names_it_in_the_next_step(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    (folder / "config.yaml").rename(folder / "my feeds.yaml")
    with hs.serve() as server:
        feed_url = server.route("/feed.xml", hs.static(FEED))
        result = run("--config", "my feeds.yaml", "add", feed_url, cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "run `aggregator --config 'my feeds.yaml' sync` to fetch it now" in result.stdout


def test_a_feed_without_title_is_named_by_its_url_as_add_help_says(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    untitled = FEED.replace(b"<title>Radio Four</title>", b"")
    with hs.serve() as server:
        feed_url = server.route("/feed.xml", hs.static(untitled))
        result = run("add", feed_url, cwd=folder)
    assert result.returncode == 0, result.stderr
    assert configured(folder)[0]["name"] == feed_url
    shown = run("add", "--help", cwd=folder).stdout
    assert "default: the feed's title, else the feed's URL" in " ".join(shown.split())


def test_import_opml_adds_every_feed_with_folders_as_tags(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    (folder / "subs.opml").write_text(
        "<?xml version='1.0'?><opml version='2.0'><head><title>mine</title></head><body>"
        "<outline text='新闻'>"
        "<outline type='rss' text='早报' xmlUrl='https://www.zaobao.com/rss'/>"
        "<outline type='rss' text='BBC' xmlUrl='https://bbc.example/rss'/>"
        "<outline type='rss' text='Old' xmlUrl='ftp://files.example/feed.xml'/>"
        "<outline type='rss' text='Loud' xmlUrl='HTTP://loud.example/rss'/>"
        "</outline></body></opml>",
        encoding="utf-8",
    )
    result = run("import-opml", "subs.opml", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported 3 feeds")
    assert "(1 not http(s))" in result.stdout.splitlines()[0]
    assert result.stderr == "skipped ftp://files.example/feed.xml: not an http(s) URL, left out\n"
    assert "run `aggregator sync` to fetch them now" in result.stdout.splitlines()
    assert [(i["name"], i["tags"]) for i in configured(folder)] == [
        ("早报", ["新闻"]),
        ("BBC", ["新闻"]),
        ("Loud", ["新闻"]),
    ]
    again = run("import-opml", "subs.opml", cwd=folder)
    assert "imported 0 feeds" in again.stdout and "(3 already there, 1 not" in again.stdout
    (folder / "bad.opml").write_text("<html>nope</html>", encoding="utf-8")
    bad = run("import-opml", "bad.opml", cwd=folder)
    assert bad.returncode == 1 and bad.stderr.startswith("error: bad.opml: not an OPML")
    assert "Traceback" not in bad.stderr


def test_sync_with_an_unreachable_feed_exits_1_and_names_it(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    with hs.serve() as server:
        good = server.route("/feed.xml", hs.static(FEED))
        bad = server.url("/nothing.xml")
        inputs = [{"kind": "feed", "url": good, "name": "good"}]
        inputs.append({"kind": "feed", "url": bad, "name": "bad"})
        text = CONFIG.replace("inputs: []", "inputs: " + json.dumps(inputs))
        (folder / "config.yaml").write_text(text, encoding="utf-8")
        result = run("sync", cwd=folder)
        listing = run("inputs", cwd=folder)
        again = run("sync", cwd=folder)
    # Backing off, the feed is not fetched again so soon; the run says why, and what failed.
    assert re.search(
        r"^bad: not due until \S+ \S+ UTC \(retrying after 1 failure; last: HTTP 404\)$",
        again.stdout,
        re.M,
    ), again.stdout
    assert result.returncode == 1
    assert f"error: input bad: {bad}: HTTP 404" in result.stderr
    assert "Traceback" not in result.stderr
    assert "good: 1 new" in result.stdout
    assert "last error: HTTP 404" in listing.stdout
    # An input that never succeeded still shows when it was last tried.
    [row] = [line.split("\t") for line in listing.stdout.splitlines() if line.startswith("bad\t")]
    _, kind, _, last_attempt, last_success, errors, *_ = row
    assert (kind, errors, last_success) == ("feed", "1", "")
    assert last_attempt.startswith("20")


def test_check_shows_every_kind_of_input(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    inputs = [
        {"kind": "feed", "url": "https://radio.example/feed.xml", "name": "radio", "every": "2h"},
        {"kind": "origin", "per_run": 10, "enabled": False},
    ]
    text = CONFIG.replace("inputs: []", "inputs: " + json.dumps(inputs))
    (folder / "config.yaml").write_text(text, encoding="utf-8")
    result = run("check", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "input radio: feed https://radio.example/feed.xml every 2h" in result.stdout
    assert "input origin: origin, up to 10 original pages per sync (disabled)" in result.stdout


def test_prune_removes_inputs_taken_out_of_the_config(tmp_path: Path) -> None:
    """An input taken out of the configuration keeps its copies (and so its entries) until
    `prune` is asked for; `inputs` says so. Entries another input also carries stay."""
    folder = setup(tmp_path)
    posts = folder / "posts"
    posts.mkdir()
    for n in (1, 2):
        (posts / f"{n}.md").write_text(
            f"---\ntitle: Post {n}\ndate: 2023-05-0{n} 08:00:00\n"
            + ("from: https://radio.example/e/1\n" if n == 1 else "")
            + f"---\n<p>Post {n}</p>\n",
            encoding="utf-8",
        )
    with hs.serve() as server:
        feed_url = server.route("/feed.xml", hs.static(FEED))
        both = [{"kind": "files", "path": "posts", "name": "old"}]
        both.append({"kind": "feed", "url": feed_url, "name": "radio"})
        config = folder / "config.yaml"
        config.write_text(CONFIG.replace("inputs: []", "inputs: " + json.dumps(both)))
        assert run("sync", cwd=folder).returncode == 0
    atom = folder / "public" / "all.atom"
    assert atom.read_text(encoding="utf-8").count("<entry>") == 2

    config.write_text(CONFIG.replace("inputs: []", "inputs: " + json.dumps(both[1:])))
    listing = run("inputs", "--json", cwd=folder)
    [old] = [i for i in json.loads(listing.stdout) if i["name"] == "old"]
    assert old["status"] == "not in the config: `aggregator prune` removes it and its 2 copies"
    assert old["location"] == str(posts)

    dry = run("prune", "--dry-run", cwd=folder)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == f"would remove old (files {posts}) and its 2 copies\n"
    assert atom.read_text(encoding="utf-8").count("<entry>") == 2

    pruned = run("prune", cwd=folder)
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith(f"removed old (files {posts}) and its 2 copies\n")
    assert "(1 removed, 1 updated)" in pruned.stdout
    # Post 2 had no other copy: gone. Post 1 is also the feed's episode: kept, as the feed has it.
    text = atom.read_text(encoding="utf-8")
    assert text.count("<entry>") == 1
    assert "<title>Episode</title>" in text and "Post 2" not in text
    assert [i["name"] for i in json.loads(run("inputs", "--json", cwd=folder).stdout)] == ["radio"]
    assert run("prune", cwd=folder).stdout == (
        "nothing to prune: the configuration names every stored input\n"
    )
