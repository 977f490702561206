"""The `aggregator` command. Each command parses its arguments, calls one library function,
prints, and maps the outcome to an exit code:

    0  everything ran (files that are not posts are reported, not failures)
    1  an input as a whole failed (folder missing), or the database or output is unusable
    2  bad configuration or usage
  130  interrupted (Ctrl-C); the store stays consistent and the next sync finishes the work

A user's mistake is one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, NoReturn

import click

from aggregator import __version__
from aggregator.errors import AggregatorError, ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def fail(exc: AggregatorError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)


def load_config(ctx: click.Context) -> Any:
    from aggregator import config

    try:
        return config.load(ctx.obj["config"])
    except ConfigError as exc:
        fail(exc)


class UsageLine(click.UsageError):
    """A usage error shown as one line, like every other mistake: `error: …` and where to
    look. Click's own display takes four (usage, hint, blank line, error)."""

    def show(self, file: IO[Any] | None = None) -> None:
        message = self.format_message().rstrip(".")
        if self.ctx is not None:
            message += f" (see `{self.ctx.command_path} --help`)"
        click.echo(f"error: {message}", file=file, err=True)


_SHOWN_AS_IS: tuple[type[click.UsageError], ...] = (UsageLine,)
if hasattr(click.exceptions, "NoArgsIsHelpError"):  # click 8.2+: `aggregator` alone shows help
    _SHOWN_AS_IS += (click.exceptions.NoArgsIsHelpError,)


@contextmanager
def _one_line_usage() -> Iterator[None]:
    try:
        yield
    except _SHOWN_AS_IS:
        raise
    except click.UsageError as exc:
        raise UsageLine(exc.format_message(), exc.ctx) from exc


class Group(click.Group):
    """Usage errors, wherever click finds them, become one line: the group's own options are
    parsed in `make_context`, a subcommand's (and a subgroup's) in `invoke`."""

    group_class = type  # subgroups (`db`) are built by this class too

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _one_line_usage():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_usage():
            return super().invoke(ctx)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            args = self._global_options_first(args)
        return super().parse_args(ctx, args)

    def _global_options_first(self, args: list[str]) -> list[str]:
        """`aggregator sync -v --config c.yaml` as `aggregator -v --config c.yaml sync`: the
        options of the whole program are taken wherever they are written (up to `--`)."""
        moved: list[str] = []
        out: list[str] = []
        command = False
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                out.extend(args[i:])
                break
            if command and arg in ("-v", "--verbose"):
                moved.append(arg)
            elif command and arg == "--config" and i + 1 < len(args):
                moved += [arg, args[i + 1]]
                i += 1
            elif command and arg.startswith("--config="):
                moved.append(arg)
            else:
                command = command or arg in self.commands
                out.append(arg)
            i += 1
        return [*moved, *out]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="AGGREGATOR_CONFIG",
    default="config.yaml",
    show_default=True,
    help="Configuration file (also $AGGREGATOR_CONFIG).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what each stage does and how long.")
@click.version_option(__version__, "-V", "--version", prog_name="aggregator")
@click.pass_context
def main(ctx: click.Context, config_path: str, verbose: bool) -> None:
    """Gather news from archived posts and feeds into one deduplicated store, and publish it
    as Atom, RSS and JSON feeds per source, per tag and for everything."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_path
    ctx.obj["verbose"] = verbose
    if verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
        for noisy in ("httpx", "httpcore", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def _batch_gc() -> Iterator[None]:
    """Tune the cycle collector for a one-shot run that builds large structures (a sync of
    100,000 posts holds several hundred thousand small objects). With the default thresholds
    the collector walks them again and again as they pile up: a sync with nothing new took
    1.5-1.7 s at 100k posts, 1.2 s with these. The modules loaded so far are moved out of its
    sight (`gc.freeze`), and it runs less often; cycles are still collected. The thresholds
    are restored after the command (tests run it in process); the frozen objects stay frozen,
    or the collection Python makes when it exits walks them all (0.1 s at 100k posts). Not
    used by the daemon, which runs for months."""
    import gc

    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


@main.command()
@click.option(
    "--only", "only", multiple=True, metavar="NAME", help="Run only this input (repeatable)."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes for reading posts (default: one per core).",
)
@click.option("--force", is_flag=True, help="Fetch every feed now, even those not due yet.")
@click.pass_context
def sync(ctx: click.Context, only: tuple[str, ...], workers: int | None, force: bool) -> None:
    """Read every input, fetch the feeds that are due, update the store, and publish."""
    from aggregator import sync as _  # noqa: F401  (loaded before the collector is tuned)

    with _batch_gc():
        _sync(ctx, only, workers, force)


def _sync(ctx: click.Context, only: tuple[str, ...], workers: int | None, force: bool) -> None:
    from aggregator import sync as sync_module
    from aggregator.report import ConsoleReporter, print_summary

    config = load_config(ctx)
    names = {i.display_name for i in config.inputs}
    unknown = [n for n in only if n not in names]
    if unknown:
        click.echo(
            f"error: --only {unknown[0]}: no input has that name "
            f"(inputs: {', '.join(sorted(names)) or 'none'})",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    reporter = ConsoleReporter()
    try:
        with reporter:
            report = sync_module.sync(
                config, only=only, reporter=reporter, workers=workers, force=force
            )
    except AggregatorError as exc:
        fail(exc)
    except KeyboardInterrupt:
        click.echo(
            "interrupted: the store is consistent; the next sync finishes the work", err=True
        )
        sys.exit(EXIT_INTERRUPTED)
    print_summary(report, config, reporter)
    sys.exit(EXIT_FAILED if report.failed else EXIT_OK)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: serve.host).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port (default: serve.port)."
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per event, as text or as JSON objects.",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, log_format: str) -> None:
    """Run as a daemon: refresh every input on its schedule and serve the feeds over HTTP.

    Stops cleanly on SIGTERM or Ctrl-C (the work under way finishes first); SIGHUP reads the
    configuration again (inputs added, removed or changed apply at once)."""
    from aggregator import daemon
    from aggregator.config import config_path

    config = load_config(ctx)
    daemon.setup_logging(log_format, verbose=ctx.obj.get("verbose", False))
    try:
        code = daemon.serve(
            config,
            host if host is not None else config.serve.host,
            port if port is not None else config.serve.port,
            config_path(ctx.obj["config"]).resolve(),
        )
    except AggregatorError as exc:
        fail(exc)
    sys.exit(code)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_context
def feeds(ctx: click.Context, as_json: bool) -> None:
    """List every published feed: kind, name, entries, last update, files and URLs."""
    from aggregator.publish import MANIFEST, read_manifest
    from aggregator.publish.plan import feed_ref, sort_key

    config = load_config(ctx)
    manifest = read_manifest(config.output_dir)
    listing: list[dict[str, Any]] = []
    for key, entry in manifest.get("feeds", {}).items():
        ref = feed_ref(key, entry["name"])
        listing.append(
            {
                "kind": ref.kind,
                "name": ref.name,
                "entries": entry["entries"],
                "updated": entry["updated"],
                "files": {fmt: str(config.output_dir / rel) for fmt, rel in entry["files"].items()},
                "urls": {fmt: ref.url(config.site.base_url, fmt) for fmt in entry["files"]},
                "_order": sort_key(ref),
            }
        )
    listing.sort(key=lambda item: item.pop("_order"))
    if as_json:
        click.echo(json.dumps(listing, ensure_ascii=False, indent=2))
        return
    if not listing:
        click.echo(
            f"No feeds published yet in {config.output_dir} (no {MANIFEST}); "
            "run `aggregator sync`.",
            err=True,
        )
        return
    from aggregator.report import print_feeds

    print_feeds(listing)


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration file and say what it configures."""
    config = load_config(ctx)
    click.echo(f"{ctx.obj['config']}: ok")
    from aggregator.config import format_duration
    from aggregator.store import describe_url

    click.echo(f"  database: {describe_url(config.database_url)}")
    click.echo(f"  output:   {config.output_dir}")
    click.echo(f"  site:     {config.site.title} <{config.site.base_url}>")
    for inp in config.inputs:
        state = "" if inp.enabled else " (disabled)"
        if inp.kind == "files":
            where = config.resolve(inp.path)
            exists = "" if where.is_dir() else "  [folder not found]"
            click.echo(f"  input {inp.display_name}: {inp.kind} {where}{state}{exists}")
        elif inp.kind == "feed":
            every = f" every {format_duration(inp.every)}"
            click.echo(f"  input {inp.display_name}: {inp.kind} {inp.url}{every}{state}")
        else:
            where = f"up to {inp.per_run} original pages per sync"
            click.echo(f"  input {inp.display_name}: {inp.kind}, {where}{state}")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create the database schema, or bring it to the newest version."""
    from aggregator.store import Store, describe_url

    config = load_config(ctx.find_root())
    try:
        store = Store.open(config.database_url)
        revision = store.schema_revision()
        store.close()
    except AggregatorError as exc:
        fail(exc)
    click.echo(f"{describe_url(config.database_url)}: schema at revision {revision}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_context
def inputs(ctx: click.Context, as_json: bool) -> None:
    """List every configured input with its state: status, last attempt and success, errors,
    next due time."""
    from aggregator.report import input_listing, print_inputs
    from aggregator.store import Store
    from aggregator.sync import unlisted_inputs

    config = load_config(ctx)
    try:
        with Store.open(config.database_url) as store:
            rows = {r["name"]: r for r in store.input_rows()}
            unlisted = unlisted_inputs(config, store)
    except AggregatorError as exc:
        fail(exc)
    listing = input_listing(config, rows, unlisted)
    if as_json:
        click.echo(json.dumps(listing, ensure_ascii=False, indent=2))
    else:
        print_inputs(listing)


@main.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.pass_context
def prune(ctx: click.Context, dry_run: bool) -> None:
    """Remove the inputs the configuration no longer names, with their stored copies, then
    publish. Entries no other input carries leave the feeds."""
    from aggregator import sync as sync_module

    config = load_config(ctx)
    try:
        unlisted, report = sync_module.prune(config, dry_run=dry_run)
    except AggregatorError as exc:
        fail(exc)
    if not unlisted:
        click.echo("nothing to prune: the configuration names every stored input")
        return
    for u in unlisted:
        copies = u.copies_text
        if u.held_by is not None:
            click.echo(f"kept {u.name} ({u.kind} {u.location}): being refreshed by {u.held_by}")
        elif dry_run:
            click.echo(f"would remove {u.name} ({u.kind} {u.location}) and its {copies}")
        else:
            click.echo(f"removed {u.name} ({u.kind} {u.location}) and its {copies}")
    if report.published is not None:
        click.echo(
            f"entries: {report.entries_total} in store ({report.entries_removed} removed, "
            f"{report.entries_updated} updated)"
        )
        click.echo(
            f"published: {len(report.published.feeds)} feeds in {config.output_dir}, "
            f"{len(report.published.written)} files written"
        )


def _fetch_settings(config: Any) -> Any:
    from aggregator.live import fetch_settings

    return fetch_settings(config)


@main.command()
@click.argument("url")
@click.pass_context
def discover(ctx: click.Context, url: str) -> None:
    """List the feeds at URL: the URL itself when it is a feed, else the feeds its page links
    to, else those at the site's usual feed paths (and it says so). Changes nothing."""
    from aggregator.discover import discover as find
    from aggregator.discover import guess_note

    config = load_config(ctx)
    try:
        found = find(url, _fetch_settings(config))
    except AggregatorError as exc:
        fail(exc)
    if not found:
        click.echo(f"error: {url}: no feed found there", err=True)
        sys.exit(EXIT_FAILED)
    if note := guess_note(url, found):
        click.echo(note, err=True)  # stdout stays the list of feeds
    for f in found:
        click.echo(f"{f.url}\t{f.title or ''}\t{f.items} items")


@main.command()
@click.argument("url")
@click.option(
    "--name", help="Name of the new input (default: the feed's title, else the feed's URL)."
)
@click.option(
    "--source",
    help="Source (publisher) of its items "
    "(default: the feed's title, else the host its items link to).",
)
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Tag for its items (repeatable).")
@click.pass_context
def add(
    ctx: click.Context, url: str, name: str | None, source: str | None, tags: tuple[str, ...]
) -> None:
    """Add the feed at URL to the config (an HTML page: the feed it links to). A URL that is
    neither is tried at the site's usual feed paths, and it says so."""
    import shlex

    from click.core import ParameterSource

    from aggregator.config import config_path
    from aggregator.config_edit import add_inputs
    from aggregator.discover import discover as find
    from aggregator.discover import guess_note

    config = load_config(ctx)
    try:
        found = find(url, _fetch_settings(config))
        if not found:
            click.echo(f"error: {url}: no feed found there", err=True)
            sys.exit(EXIT_FAILED)
        chosen = found[0]
        named = next((i for i in config.inputs if i.display_name == name), None)
        if named is not None and getattr(named, "url", None) != chosen.url:
            click.echo(f"error: --name {name}: another input has that name", err=True)
            sys.exit(EXIT_USAGE)
        if note := guess_note(url, found):
            click.echo(note)
        for warning in chosen.warnings:
            click.echo(f"warning: {chosen.url}: {warning}", err=True)
        spec = {
            "url": chosen.url,
            "name": name or chosen.title or chosen.url,
            "source": source,
            "tags": tags,
        }
        path = config_path(ctx.obj["config"])
        added = add_inputs(path, [spec])
    except AggregatorError as exc:
        fail(exc)
    if not added:
        click.echo(f"{chosen.url} is already in {path}")
        return
    click.echo(f"added feed {added[0]!r}: {chosen.url} ({chosen.items} items) to {path}")
    for other in found[1:]:
        click.echo(f"also found: {other.url} ({other.title or 'untitled'})")
    explicit = ctx.find_root().get_parameter_source("config_path") is ParameterSource.COMMANDLINE
    options = f"--config {shlex.quote(str(path))} " if explicit else ""
    click.echo(f"run `aggregator {options}sync` to fetch it now")
    click.echo(RELOAD_HINT)


RELOAD_HINT = "a running `aggregator serve` takes it up on SIGHUP (`systemctl reload aggregator`)"


@main.command("import-opml")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def import_opml(ctx: click.Context, file: str) -> None:
    """Add every feed of an OPML subscription list to the config (its folders become tags)."""
    import shlex

    from click.core import ParameterSource

    from aggregator.adapters.opml import read_opml
    from aggregator.config import config_path
    from aggregator.config_edit import add_inputs

    load_config(ctx)  # the config must be valid before it is changed
    ignored: list[str] = []
    try:
        feeds = read_opml(file, ignored)
        path = config_path(ctx.obj["config"])
        added = add_inputs(path, feeds)
    except AggregatorError as exc:
        fail(exc)
    for line in ignored:
        click.echo(f"skipped {line}", err=True)
    skipped = len(feeds) - len(added)
    notes = [f"{skipped} already there"] if skipped else []
    if ignored:
        notes.append(f"{len(ignored)} not http(s)")
    click.echo(
        f"imported {len(added)} feeds from {file} into {path}"
        + (f" ({', '.join(notes)})" if notes else "")
    )
    if added:
        explicit = (
            ctx.find_root().get_parameter_source("config_path") is ParameterSource.COMMANDLINE
        )
        options = f"--config {shlex.quote(str(path))} " if explicit else ""
        click.echo(f"run `aggregator {options}sync` to fetch them now")
        click.echo(RELOAD_HINT)


def run(argv: Sequence[str] | None = None) -> int:
    """Entry point for tests: run the CLI in-process and return its exit code."""
    try:
        main.main(args=list(argv or []), prog_name="aggregator", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
