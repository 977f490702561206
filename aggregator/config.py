"""The configuration file: `config.yaml`, validated into frozen models.

The file is found from `--config PATH`, else the `AGGREGATOR_CONFIG` variable, else `config.yaml`
in the working directory. Relative paths in it (the database file, the output folder, input
folders) are relative to the folder holding the config file, so a config works from any working
directory. Unknown keys and wrong types are refused with the key path named
(`inputs[0].path: required key is missing`). Types are strict: a quoted `"50"` is not a number
and `"yes"` is not a boolean. Durations (`every`, `timeout`…) take `90`, `90s`, `15m`, `1h`, `1d`
or `1w`, up to a year; most must be more than zero.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import zoneinfo
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from aggregator.errors import ConfigError

DEFAULT_CONFIG = "config.yaml"
CONFIG_ENV = "AGGREGATOR_CONFIG"

FeedFormat = Literal["atom", "rss", "json"]

# YAML's "50" and "yes" are strings: refused rather than coerced, so that a quoted value is a
# mistake the user hears about (pydantic's default "lax" mode would take them).
Int = Annotated[int, Field(strict=True)]
Bool = Annotated[bool, Field(strict=True)]
Float = Annotated[float, Field(strict=True)]  # an int is still a float: `max_mib: 15`


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(_Model):
    title: str = "Aggregator"
    """Title of the everything feed and of index.html; per-source and per-tag feeds add to it."""
    base_url: str = "http://127.0.0.1:8000/"
    """Absolute URL the output folder is served under; feed self links and ids are built on it."""
    description: str = "Articles gathered and deduplicated by aggregator"
    language: str | None = None
    """Default language of entries (BCP 47, for example `zh`), when neither input nor post says."""

    @field_validator("base_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (raises for a port or IPv6 address that is not one)
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        if not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        return value if value.endswith("/") else value + "/"


class Feeds(_Model):
    entries: Annotated[Int, Field(ge=1, le=10_000)] = 50
    """Entries in each published feed, newest first."""
    formats: tuple[FeedFormat, ...] = ("atom", "rss", "json")
    summary_length: Annotated[Int, Field(ge=0, le=10_000)] = 280
    """Characters of plain text in each entry's summary."""
    archive_page: Annotated[Int, Field(ge=0, le=10_000)] = 100
    """Entries per archive page (RFC 5005): every feed with more entries than its document
    holds links back through pages that hold its whole history, each page fixed once full (a
    feed that fits its document is complete and has none). 0 publishes no archive pages."""
    archive_formats: tuple[FeedFormat, ...] = ("atom",)
    """Formats archive pages are published in (of `formats`). Atom by default: RFC 5005 is an
    Atom extension, and each format holds the whole history again."""

    @field_validator("formats")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one format")
        return tuple(dict.fromkeys(value))


class Identity(_Model):
    tracking_params: tuple[str, ...] = ()
    """Query parameters dropped from URLs besides the built-in list (utm_*, fbclid, gclid, spm…)."""
    host_aliases: dict[str, str] = Field(default_factory=dict)
    """Hosts that serve the same articles: `zaobao.com.sg: zaobao.com`."""


def _check_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.I)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
LONGEST = timedelta(days=365)
"""Longest duration accepted: anything longer is a slip (and `now + every` must stay a date)."""


def parse_duration(value: Any) -> timedelta:
    """`90`, `90s`, `15m`, `1h`, `1d`, `1w` as a timedelta. A negative number passes: the
    field decides whether zero or less makes sense."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("must be a duration like 30m, 1h or 1d")
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("must be a duration like 30m, 1h or 1d")
        seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if not math.isfinite(seconds) or abs(seconds) > LONGEST.total_seconds():
        raise ValueError("must be a duration of at most 365d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """A duration as the config can write it: in the largest unit that holds it whole (`30m`,
    `2h`, `36h`, `90s`; `1.5s`), so it can be copied back into the file."""
    seconds = value.total_seconds()
    if seconds == int(seconds):
        for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"{int(seconds // size)}{unit}"
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative (a duration like 30m, 1h or 1d; 0 for none)")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be more than 0 (a duration like 30m, 1h or 1d)")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_not_negative)]
"""A duration where 0 means none: no delay, no caching."""
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
"""A duration that has to pass: an interval, a deadline, a lease."""


def _check_selector(value: str) -> str:
    """Compile a CSS selector as the page adapter does, so that `check` refuses a typo rather
    than every page failing at sync time. lxml is imported only when a selector is configured."""
    from lxml import etree
    from lxml.cssselect import CSSSelector, SelectorError

    try:
        CSSSelector(value)
    except (SelectorError, etree.XPathError) as exc:
        raise ValueError(f"invalid CSS selector {value!r}: {exc}") from None
    return value


Selector = Annotated[str, AfterValidator(_check_selector)]


class FilesInput(_Model):
    kind: Literal["files"]
    path: str
    """Folder of posts, read recursively."""
    name: str | None = None
    """Name shown in reports and used by `sync --only`; defaults to the folder name."""
    source: str | None = None
    """Source (publisher) of every post here; else each post's `author`, else its URL's host."""
    tags: tuple[str, ...] = ()
    """Tags added to every post here."""
    timezone: str = "UTC"
    """Zone for dates written without one (`2022-07-10 09:30:00`)."""
    language: str | None = None
    every: PositiveDuration = timedelta(minutes=5)
    """How often `aggregator serve` looks for new and changed posts."""
    enabled: Bool = True

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @property
    def display_name(self) -> str:
        return self.name or Path(self.path).name or self.path


class FeedInput(_Model):
    kind: Literal["feed"]
    url: str
    """An RSS, Atom or JSON Feed URL."""
    name: str | None = None
    """Name shown in reports and used by `sync --only`; defaults to the URL's host and path."""
    source: str | None = None
    """Source (publisher) of every item; else the feed's own title, else the URL's host."""
    tags: tuple[str, ...] = ()
    timezone: str | None = None
    """Zone for dates written without one (and for `CST`); default UTC."""
    language: str | None = None
    every: PositiveDuration = timedelta(minutes=30)
    """How often the feed is fetched."""
    enabled: Bool = True

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL")
        return value

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        return (parts.netloc + parts.path).rstrip("/") or self.url


class OriginInput(_Model):
    """The original article pages named by entries' links (`from:` in archived posts)."""

    kind: Literal["origin"]
    name: str = "origin"
    per_run: Annotated[Int, Field(ge=1, le=100_000)] = 50
    """Pages fetched at most per run, newest entries first."""
    every: PositiveDuration = timedelta(hours=1)
    selectors: dict[str, Selector] = Field(default_factory=dict)
    """CSS selector of the article body per host (`www.zaobao.com: "div.article-content"`);
    other hosts use a generic extractor."""
    min_chars: Annotated[Int, Field(ge=0)] = 200
    """An extraction with less text than this (or than 30% of the stored text) is too thin to
    replace stored content."""
    timezone: str | None = None
    enabled: Bool = True

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @property
    def display_name(self) -> str:
        return self.name


class Fetch(_Model):
    """How live inputs are fetched."""

    concurrency: Annotated[Int, Field(ge=1, le=256)] = 16
    per_host: Annotated[Int, Field(ge=1, le=32)] = 2
    timeout: PositiveDuration = timedelta(seconds=30)
    """Overall deadline of one fetch, redirects and body included."""
    max_mib: Annotated[Float, Field(gt=0, le=1024)] = 15
    """Largest body accepted, after decompression."""
    max_redirects: Annotated[Int, Field(ge=0, le=20)] = 5
    allow_private_networks: Bool = False
    """Allow fetching from loopback, private and link-local addresses (off: a feed URL or a
    redirect cannot reach the machine's own network)."""
    backoff_cap: PositiveDuration = timedelta(days=1)
    """Longest wait between retries of a failing input."""
    moved_after: Duration = timedelta(days=1)
    """A permanent redirect seen this long (and `moved_after_fetches` times) updates the URL."""
    moved_after_fetches: Annotated[Int, Field(ge=1)] = 3


class Serve(_Model):
    """How `aggregator serve` listens and keeps the feeds fresh."""

    host: str = "127.0.0.1"
    port: Annotated[Int, Field(ge=0, le=65535)] = 8000
    publish_delay: Duration = timedelta(seconds=2)
    """Wait after a refresh that changed something before publishing, so that refreshes close
    together publish once."""
    check_every: PositiveDuration = timedelta(seconds=30)
    """How often the store is checked for changes made by other processes (other daemons, an
    `aggregator sync`), which are then published here too."""
    lease: PositiveDuration = timedelta(minutes=5)
    """How long a daemon's claim on an input lasts without renewal; a daemon that dies frees its
    inputs after this."""
    max_age: Duration = timedelta(minutes=5)
    """`Cache-Control: max-age` of served feeds."""
    jitter: Annotated[Float, Field(ge=0, le=0.5)] = 0.1
    """Random spread of each refresh, as a fraction of the input's `every`."""


class WebSub(_Model):
    hub: str | None = None
    """A WebSub hub (https://…): feeds link to it and it is told when they change."""

    @field_validator("hub")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL")
        return value


Input = Annotated[FilesInput | FeedInput | OriginInput, Field(discriminator="kind")]
_INPUT_KINDS: dict[str, type[BaseModel]] = {
    "files": FilesInput,
    "feed": FeedInput,
    "origin": OriginInput,
}


class Config(_Model):
    database: str = "sqlite:///aggregator.db"
    """SQLAlchemy URL. A relative SQLite path is relative to this file's folder."""
    output: str = "public"
    """Folder the feeds, index.html and feeds.opml are written to."""
    site: Site = Field(default_factory=Site)
    feeds: Feeds = Field(default_factory=Feeds)
    identity: Identity = Field(default_factory=Identity)
    fetch: Fetch = Field(default_factory=Fetch)
    serve: Serve = Field(default_factory=Serve)
    websub: WebSub = Field(default_factory=WebSub)
    inputs: tuple[Input, ...] = ()

    base_dir: Path = Field(default=Path("."), exclude=True)
    """Folder of the config file (set by `load`, not by the file)."""

    def resolve(self, path: str) -> Path:
        """A path from the file, made absolute against the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def output_dir(self) -> Path:
        return self.resolve(self.output)

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path anchored at the config file's folder."""
        prefix = "sqlite:///"
        url = self.database
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rest = url[len(prefix) :]
            if rest and rest != ":memory:" and not rest.startswith(":memory:"):
                return prefix + str(self.resolve(rest))
        return url

    @field_validator("database")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme.split("+", 1)[0] not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(
                "must be a SQLite or PostgreSQL URL, like sqlite:///aggregator.db or "
                "postgresql://user:password@host/dbname"
            )
        if scheme.startswith("postgres") and scheme not in (
            "postgres",
            "postgresql",
            "postgresql+psycopg",
        ):
            raise ValueError("PostgreSQL is used through psycopg 3: write postgresql://…")
        return value

    @field_validator("inputs")
    @classmethod
    def _unique_names(cls, value: tuple[Input, ...]) -> tuple[Input, ...]:
        seen: set[str] = set()
        for item in value:
            name = item.display_name
            if name in seen:
                raise ValueError(f"two inputs are named {name!r}; give one a distinct `name`")
            seen.add(name)
        return value


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Which file to read: the argument, else $AGGREGATOR_CONFIG, else ./config.yaml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else Path(DEFAULT_CONFIG)


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file; every problem is a ConfigError naming file and key."""
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        where = "" if file.is_absolute() else f" (looked for {file.resolve()})"
        raise ConfigError(
            f"{file}: config file not found{where}; choose one with --config PATH or {CONFIG_ENV}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read config file ({exc})") from None
    try:
        data = yaml.load(text, Loader=yaml.CSafeLoader) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}{_yaml_problem(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}: the top level must be a mapping of keys")
    return parse(data, base_dir=file.resolve().parent, origin=str(file))


def parse(data: Mapping[str, Any], *, base_dir: Path, origin: str = "config") -> Config:
    """Validate an already-loaded mapping (used by `load` and by tests)."""
    if "base_dir" in data:
        raise ConfigError(f"{origin}: base_dir: unknown key")
    try:
        return Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        err = exc.errors()[0]
        more = len(exc.errors()) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{origin}: {_key_path(err['loc'])}: {_message(err)}{tail}") from None


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    previous: int | str | None = None
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif isinstance(previous, int) and item in ("files", "feed", "origin"):
            pass  # pydantic names the chosen `kind` branch; the user never wrote it
        else:
            parts.append(("." if parts else "") + str(item))
        previous = item
    return "".join(parts) or "(top level)"


_EXPECTED = {"int_type": "a whole number", "float_type": "a number", "bool_type": "true or false"}


def _describe(value: Any) -> str:
    """What the file holds instead, as YAML would say it: `the string '50'`, `a list`."""
    if value is None:
        return "an empty value"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model at `loc` (a validation error's location) accepts; [] when unknown."""
    model: type[BaseModel] | None = Config
    for item in loc:
        if isinstance(item, int):
            continue
        if item in _INPUT_KINDS:  # pydantic names the chosen `kind` branch
            model = _INPUT_KINDS[item]
            continue
        field = model.model_fields.get(item) if model else None
        model = _model_in(field.annotation) if field else None
        if model is None:
            return []
    return [name for name in (model.model_fields if model else ()) if name != "base_dir"]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The config model a field holds (itself, or inside a tuple or Optional), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        name, parent = err["loc"][-1], err["loc"][:-1]
        close = difflib.get_close_matches(str(name), _fields_at(parent), n=1, cutoff=0.75)
        return f"unknown key (did you mean `{close[0]}`?)" if close else "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        return "`kind` must be one of: files, feed, origin"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, not {_describe(err['input'])}"
    msg = str(err["msg"])
    return msg[len("Value error, ") :] if msg.startswith("Value error, ") else msg


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """`:LINE:COLUMN: not valid YAML: problem (context at line N)` for a file's YAML error."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return f": not valid YAML ({_one_line(exc)})"
    out = f":{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        out += f" ({context} at line {context_mark.line + 1})"
    return out
