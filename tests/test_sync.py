"""The sync orchestration, in process, on real files and a real SQLite store."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest

from aggregator import config as config_module
from aggregator.adapters import files as files_adapter
from aggregator.sync import sync


class Recorder:
    """A reporter that keeps what a person would have been shown."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def input_started(self, name: str, to_read: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def skipped(self, path: str, reason: str) -> None:
        self.lines.append(f"skipped {path}: {reason}")

    def warning(self, path: str, message: str) -> None:
        self.lines.append(f"warning {path}: {message}")

    def publishing(self, done: int, total: int) -> None:
        pass


def refuse_to_list(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make listing `folder` fail as a permission problem would. The tests run as root, so
    the refusal is simulated at the one call that meets it; everything else is real."""
    real_open = os.open

    def open_folder(path: str, flags: int, *args: Any) -> int:
        if Path(path) == folder:  # where a folder without read permission refuses
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(files_adapter.os, "open", open_folder)


def post(folder: Path, name: str, title: str, day: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    front = f"---\ntitle: {title}\ndate: 2023-05-{day:02d} 08:00:00\nauthor: 测试\n---\n"
    (folder / name).write_text(f"{front}<p>{title}</p>\n", encoding="utf-8")


def archive_input(tmp_path: Path, **settings: Any) -> config_module.Config:
    """The configuration of one files input, `archive`, on the folder `posts`."""
    spec = {"kind": "files", "path": "posts", "name": "archive", **settings}
    return config_module.parse({"inputs": [spec]}, base_dir=tmp_path)


def test_a_folder_that_cannot_be_listed_is_reported_and_its_posts_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "posts"
    post(archive, "top.md", "Top post", 1)
    post(archive / "2021", "inner.md", "Inner post", 2)
    config = archive_input(tmp_path)
    first = sync(config, workers=1)
    assert first.entries_total == 2

    refuse_to_list(monkeypatch, archive / "2021")
    recorder = Recorder()
    second = sync(config, workers=1, reporter=recorder)
    assert recorder.lines == [f"skipped {archive / '2021'}: cannot list folder (Permission denied)"]
    (report,) = second.inputs
    assert report.error is None and report.removed == 0
    assert second.entries_total == 2 and second.entries_removed == 0
    feed = feedparser.parse((tmp_path / "public" / "all.atom").read_bytes())
    assert sorted(e.title for e in feed.entries) == ["Inner post", "Top post"]

    # new settings while the folder is away: its posts take them once it is back
    tagged = archive_input(tmp_path, tags=["new"])
    sync(tagged, workers=1)
    monkeypatch.undo()
    sync(tagged, workers=1)
    feed = feedparser.parse((tmp_path / "public" / "all.atom").read_bytes())
    assert {e.title: [t.term for t in e.tags] for e in feed.entries} == {
        "Inner post": ["new"],
        "Top post": ["new"],
    }


def test_the_input_folder_itself_unlistable_fails_that_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    post(tmp_path / "posts", "a.md", "A", 1)
    config = archive_input(tmp_path)

    refuse_to_list(monkeypatch, tmp_path / "posts")
    report = sync(config, workers=1)
    assert report.inputs[0].error == f"{tmp_path / 'posts'}: cannot list folder (Permission denied)"
    assert report.failed


def test_a_file_name_that_is_not_utf8_is_reported_not_fatal(tmp_path: Path) -> None:
    archive = tmp_path / "posts"
    post(archive, "good.md", "Good post", 3)
    gbk_name = os.fsencode(archive) + b"/\xd6\xd0\xce\xc4.md"  # 中文 in GBK
    with open(gbk_name, "wb") as fh:
        fh.write(b"---\ntitle: Named in GBK\ndate: 2023-01-01\n---\n<p>x</p>\n")
    config = archive_input(tmp_path)
    recorder = Recorder()
    report = sync(config, workers=1, reporter=recorder)
    assert report.entries_total == 1 and not report.failed
    (line,) = recorder.lines
    assert line.startswith(f"skipped {archive}/") and line.endswith(
        ".md: name is not valid UTF-8; rename it to be read"
    )


def archive_and_other(tmp_path: Path) -> config_module.Config:
    """Posts A-C in `posts` (input `archive`) and an empty folder `other` (input `other`),
    with feeds of 2 entries and archive pages of 2."""
    for day, title in enumerate(("Post A", "Post B", "Post C"), start=1):
        post(tmp_path / "posts", f"{day}.md", title, day)
    (tmp_path / "other").mkdir()
    return config_module.parse(
        {
            "feeds": {"entries": 2, "archive_page": 2},
            "inputs": [
                {"kind": "files", "path": "posts", "name": "archive"},
                {"kind": "files", "path": "other", "name": "other"},
            ],
        },
        base_dir=tmp_path,
    )


def test_an_unreadable_body_is_forgotten_once_its_post_is_deleted(tmp_path: Path) -> None:
    """The output remembers a body it could not read until the file is back; a post deleted
    meanwhile never comes back, and its entry leaves the store: so does the memory."""
    import json

    config = archive_and_other(tmp_path)
    manifest = tmp_path / "public" / ".aggregator-manifest.json"

    def remembered() -> list[str]:
        return sorted(Path(p).name for p in json.loads(manifest.read_text()).get("unreadable", {}))

    sync(config, workers=1)
    (tmp_path / "posts").rename(tmp_path / "away")
    post(tmp_path / "other", "4.md", "Post D", 4)
    sync(config, workers=1, only=["other"])
    assert remembered() == ["3.md"]

    (tmp_path / "away" / "3.md").unlink()  # deleted while away
    (tmp_path / "away").rename(tmp_path / "posts")
    report = sync(config, workers=1)
    assert [i.removed for i in report.inputs] == [1, 0]
    assert remembered() == []


def test_a_body_that_cannot_be_read_comes_back_once_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bodies of archived posts are read from their files when published. A folder moved away
    while another input changes the feeds publishes those bodies empty, with a warning; the
    documents are rendered again next time, so the bodies return when the folder does, even
    though nothing in the store changed."""
    config = archive_and_other(tmp_path)
    output = tmp_path / "public"

    def bodies() -> dict[str, set[str]]:
        """Title -> the contents it has in the published Atom documents."""
        found: dict[str, set[str]] = {}
        for path in output.rglob("*.atom"):
            for e in feedparser.parse(path.read_bytes()).entries:
                found.setdefault(e.title, set()).add(e.content[0].value if "content" in e else "")
        return found

    sync(config, workers=1)
    assert bodies() == {t: {f"<p>{t}</p>"} for t in ("Post A", "Post B", "Post C")}

    (tmp_path / "posts").rename(tmp_path / "away")
    post(tmp_path / "other", "4.md", "Post D", 4)
    sync(config, workers=1, only=["other"])
    assert caplog.text.count("3.md: body not published: cannot read file") == 1
    shown = bodies()
    assert shown["Post D"] == {"<p>Post D</p>"}
    assert "" in shown["Post C"]  # in the documents Post D changed; it could not be read
    # While the file is still away, nothing is rendered again, and nothing said again.
    caplog.clear()
    assert sync(config, workers=1, only=["other"]).published.written == []
    assert "body not published" not in caplog.text

    (tmp_path / "away").rename(tmp_path / "posts")
    caplog.clear()
    again = sync(config, workers=1)
    assert "body not published" not in caplog.text
    assert [(i.new, i.updated) for i in again.inputs] == [(0, 0), (0, 0)]
    assert bodies() == {t: {f"<p>{t}</p>"} for t in ("Post A", "Post B", "Post C", "Post D")}
    # and then the output is up to date: nothing more to write
    assert sync(config, workers=1).published.written == []


def test_posts_already_read_follow_a_change_of_their_inputs_settings(tmp_path: Path) -> None:
    archive = tmp_path / "posts"
    post(archive, "a.md", "First post", 1)
    (archive / "b.md").write_text(
        "---\ntitle: Linked post\ndate: 2023-05-02 08:00:00\n"
        "from: https://news.example/b?utm_source=x\n---\n<p>Linked</p>\n",
        encoding="utf-8",
    )
    first = sync(archive_input(tmp_path), workers=1)
    assert first.entries_new == 2

    config = archive_input(tmp_path, source="My Archive", tags=["saved"], timezone="Asia/Tokyo")
    second = sync(config, workers=1)
    (report,) = second.inputs
    assert (report.new, report.updated, report.unchanged) == (0, 2, 0)
    feed = feedparser.parse((tmp_path / "public" / "all.atom").read_bytes())
    by_title = {e.title: e for e in feed.entries}
    assert all("saved" in [t.term for t in e.tags] for e in feed.entries)
    (source_feed,) = (tmp_path / "public" / "source").glob("my-archive*.atom")
    assert len(feedparser.parse(source_feed.read_bytes()).entries) == 2
    # naive dates are read in the input's new zone: 08:00 in Tokyo
    assert by_title["Linked post"].published == "2023-05-01T23:00:00+00:00"
    assert (tmp_path / "public" / "tag" / "saved.atom").exists()

    third = sync(config, workers=1)  # the same settings: nothing read again
    (report,) = third.inputs
    assert (report.new, report.updated, report.unchanged) == (0, 0, 2)
    assert third.published is not None and third.published.written == []


def test_a_post_saved_again_with_only_scripts_changed_is_not_updated(tmp_path: Path) -> None:
    archive = tmp_path / "posts"
    archive.mkdir()
    page = "---\ntitle: Saved page\ndate: 2023-05-01 08:00:00\n---\n<p>{}</p>{}\n"
    target = archive / "a.html"
    target.write_text(page.format("Text", "<script>var nonce = 1;</script>"), encoding="utf-8")
    config = archive_input(tmp_path)
    assert sync(config, workers=1).entries_new == 1
    before = (tmp_path / "public" / "all.atom").read_bytes()

    target.write_text(page.format("Text", "<script>var nonce = 2;</script>"), encoding="utf-8")
    again = sync(config, workers=1)
    assert (again.inputs[0].updated, again.inputs[0].unchanged) == (0, 1)  # read, same
    assert again.entries_updated == 0 and again.published is not None
    assert again.published.written == []
    assert (tmp_path / "public" / "all.atom").read_bytes() == before

    target.write_text(page.format("New text", "<script>var nonce = 3;</script>"), encoding="utf-8")
    edited = sync(config, workers=1)
    assert edited.entries_updated == 1
    (entry,) = feedparser.parse((tmp_path / "public" / "all.atom").read_bytes()).entries
    assert entry.content[0].value == "<p>New text</p>"


def test_a_date_past_the_end_of_time_is_a_warning_and_the_run_goes_on(tmp_path: Path) -> None:
    archive = tmp_path / "posts"
    post(archive, "good.md", "Good post", 1)
    (archive / "far.md").write_text(
        "---\ntitle: Far future\ndate: 9999-12-31 23:00:00 -05:00\n---\n<p>x</p>\n",
        encoding="utf-8",
    )
    config = archive_input(tmp_path)
    recorder = Recorder()
    report = sync(config, workers=1, reporter=recorder)
    assert report.entries_new == 2 and not report.failed
    assert f"warning {archive / 'far.md'}: `date` ignored: year 9999 is out of range" in (
        recorder.lines
    )


def test_touched_files_are_read_again_and_reported_unchanged(tmp_path: Path) -> None:
    archive = tmp_path / "posts"
    for day in (1, 2, 3):
        post(archive, f"p{day}.md", f"Post {day}", day)
    config = archive_input(tmp_path)
    sync(config, workers=1)
    for day in (1, 2):
        os.utime(archive / f"p{day}.md", ns=(10**18, 10**18))
    (archive / "p3.md").write_text(
        (archive / "p3.md").read_text(encoding="utf-8").replace("<p>Post 3", "<p>Edited"),
        encoding="utf-8",
    )
    again = sync(config, workers=1)
    (report,) = again.inputs
    assert (report.new, report.updated, report.unchanged) == (0, 1, 2)
    assert again.entries_updated == 1


def test_a_date_in_the_future_is_ignored_with_a_warning(tmp_path: Path) -> None:
    archive = tmp_path / "posts"
    post(archive, "old.md", "Old post", 1)
    (archive / "ahead.md").write_text(
        "---\ntitle: From the future\ndate: 2099-01-01 08:00:00\nupdated: 2099-02-01\n---\n"
        "<p>x</p>\n",
        encoding="utf-8",
    )
    config = archive_input(tmp_path)
    now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    recorder = Recorder()
    sync(config, now=now, workers=1, reporter=recorder)
    ahead = archive / "ahead.md"
    assert recorder.lines == [
        f"warning {ahead}: date 2099-01-01T08:00:00Z is in the future: ignored",
        f"warning {ahead}: `updated` 2099-02-01T00:00:00Z is in the future: ignored",
    ]
    entries = feedparser.parse((tmp_path / "public" / "all.atom").read_bytes()).entries
    dated = {e.title: e.published for e in entries}
    assert dated == {"From the future": "2026-11-22T08:00:00+00:00",  # when first seen
                     "Old post": "2023-05-01T08:00:00+00:00"}  # fmt: skip
