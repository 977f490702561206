"""The configuration file's rules: what is refused (with the key path and the reason), what is
accepted, and that the shipped `config.yaml` documents every key there is."""

from __future__ import annotations

import re
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from aggregator import config
from aggregator.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def parse(data: dict[str, Any]) -> config.Config:
    return config.parse(data, base_dir=REPO, origin="config.yaml")


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(data)
    return str(caught.value)


def files(**keys: object) -> dict[str, Any]:
    return {"inputs": [{"kind": "files", "path": "p", **keys}]}


def origin(**keys: object) -> dict[str, Any]:
    return {"inputs": [{"kind": "origin", **keys}]}


# (where, the key path in the message, the mapping holding it): one row per duration key.
DURATIONS = {
    "files.every": ("inputs[0].every", lambda v: files(every=v)),
    "feed.every": (
        "inputs[0].every",
        lambda v: {"inputs": [{"kind": "feed", "url": "https://a.example/f", "every": v}]},
    ),
    "origin.every": ("inputs[0].every", lambda v: origin(every=v)),
    "fetch.timeout": ("fetch.timeout", lambda v: {"fetch": {"timeout": v}}),
    "fetch.backoff_cap": ("fetch.backoff_cap", lambda v: {"fetch": {"backoff_cap": v}}),
    "fetch.moved_after": ("fetch.moved_after", lambda v: {"fetch": {"moved_after": v}}),
    "serve.publish_delay": ("serve.publish_delay", lambda v: {"serve": {"publish_delay": v}}),
    "serve.check_every": ("serve.check_every", lambda v: {"serve": {"check_every": v}}),
    "serve.lease": ("serve.lease", lambda v: {"serve": {"lease": v}}),
    "serve.max_age": ("serve.max_age", lambda v: {"serve": {"max_age": v}}),
}
# Zero means "none" here: publish at once, no caching, move a redirect on the count alone.
ZERO_ALLOWED = {"fetch.moved_after", "serve.publish_delay", "serve.max_age"}


def test_the_duration_table_covers_every_duration_key() -> None:
    found: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            if field.annotation is timedelta:
                found.add(f"{prefix}{name}")
            elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(field.annotation, f"{name}.")

    walk(config.Config, "")
    for model in input_models():
        walk(model, f"{kind_of(model)}.")
    assert found == set(DURATIONS)


@pytest.mark.parametrize("key", sorted(DURATIONS))
def test_durations_below_zero_are_refused_and_zero_only_where_it_means_none(key: str) -> None:
    path, data = DURATIONS[key]
    if key in ZERO_ALLOWED:
        reason = "must not be negative (a duration like 30m, 1h or 1d; 0 for none)"
    else:
        reason = "must be more than 0 (a duration like 30m, 1h or 1d)"
    assert refusal(data(-5)) == f"config.yaml: {path}: {reason}"
    for zero in (0, "0s", "0m"):
        if key in ZERO_ALLOWED:
            parse(data(zero))
        else:
            assert refusal(data(zero)) == f"config.yaml: {path}: {reason}"
    parse(data("90s"))


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e20, "99999999d", "53w"])
def test_endless_durations_are_refused_not_a_crash_later(value: object) -> None:
    # `now + every` past the year 9999 used to fail every sync with an OverflowError
    assert refusal(files(every=value)) == (
        "config.yaml: inputs[0].every: must be a duration of at most 365d"
    )


def test_durations_in_every_unit() -> None:
    every = {v: parse(files(every=v)).inputs[0].every for v in (90, 1.5, "90", "15m", "1h", "1w")}
    assert every == {
        90: timedelta(seconds=90),
        1.5: timedelta(seconds=1.5),
        "90": timedelta(seconds=90),
        "15m": timedelta(minutes=15),
        "1h": timedelta(hours=1),
        "1w": timedelta(weeks=1),
    }
    assert parse(files(every="365d")).inputs[0].every == config.LONGEST


@pytest.mark.parametrize(
    ("written", "shown"),
    [("15m", "15m"), ("2h", "2h"), ("7d", "1w"), ("90s", "90s"), ("36h", "36h"),
     ("90m", "90m"), (5401, "5401s"), (1.5, "1.5s"), (0, "0s")],
)  # fmt: skip
def test_durations_are_shown_as_the_config_can_write_them(written: object, shown: str) -> None:
    assert config.format_duration(config.parse_duration(written)) == shown
    assert config.parse_duration(shown) == config.parse_duration(written)  # copied back


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"feeds": {"entries": "50"}},
            "feeds.entries: must be a whole number, not the string '50'",
        ),
        ({"feeds": {"entries": 50.5}}, "feeds.entries: must be a whole number, not 50.5"),
        ({"feeds": {"entries": True}}, "feeds.entries: must be a whole number, not true"),
        ({"feeds": {"entries": None}}, "feeds.entries: must be a whole number, not an empty value"),
        ({"serve": {"port": "8080"}}, "serve.port: must be a whole number, not the string '8080'"),
        ({"fetch": {"max_mib": "15"}}, "fetch.max_mib: must be a number, not the string '15'"),
        ({"serve": {"jitter": [0.1]}}, "serve.jitter: must be a number, not a list"),
        (
            {"fetch": {"allow_private_networks": "yes"}},
            "fetch.allow_private_networks: must be true or false, not the string 'yes'",
        ),
        (files(enabled="no"), "inputs[0].enabled: must be true or false, not the string 'no'"),
        (origin(enabled=1), "inputs[0].enabled: must be true or false, not 1"),
        (origin(per_run="10"), "inputs[0].per_run: must be a whole number, not the string '10'"),
    ],
)
def test_quoted_numbers_and_booleans_are_refused(data: dict[str, Any], message: str) -> None:
    assert refusal(data) == f"config.yaml: {message}"


def test_unquoted_numbers_and_booleans_are_taken() -> None:
    cfg = parse(
        {
            "feeds": {"entries": 20},
            "fetch": {"allow_private_networks": True, "max_mib": 2},
            "serve": {"jitter": 0},
            "inputs": [{"kind": "origin", "enabled": False}],
        }
    )
    assert cfg.feeds.entries == 20 and cfg.fetch.allow_private_networks
    assert cfg.fetch.max_mib == 2.0 and cfg.serve.jitter == 0.0
    assert not cfg.inputs[0].enabled


@pytest.mark.parametrize(
    ("selector", "reason"),
    [
        ("div[[ bad", "Expected ident or '*', got <DELIM '[' at 4>"),
        ("", "Expected selector, got <EOF at 0>"),
        ("p::before", "Pseudo-elements are not supported."),
        ("div:nth-child(x)", "Invalid series"),
    ],
)
def test_a_css_selector_that_does_not_compile_is_refused_with_its_host(
    selector: str, reason: str
) -> None:
    data = {
        "inputs": [
            {"kind": "files", "path": "p"},
            {"kind": "feed", "url": "https://a.example/f"},
            {"kind": "origin", "selectors": {"a.example": "article", "127.0.0.1": selector}},
        ]
    }
    message = refusal(data)
    assert message.startswith(
        f"config.yaml: inputs[2].selectors.127.0.0.1: invalid CSS selector {selector!r}: "
    )
    assert reason in message and "\n" not in message


def test_css_selectors_that_compile_are_kept() -> None:
    selectors = {"www.zaobao.com": "div.article-content", "b.example": "main > p:contains('x')"}
    assert parse(origin(selectors=selectors)).inputs[0].selectors == selectors


def input_models() -> tuple[type[BaseModel], ...]:
    (union, *_) = typing.get_args(config.Input)
    return typing.get_args(union)


def kind_of(model: type[BaseModel]) -> str:
    (kind,) = typing.get_args(model.model_fields["kind"].annotation)
    return str(kind)


# ---- config.yaml documents every key ---------------------------------------------------------


def keys_written(block: str) -> set[str]:
    """Keys set or shown commented out: `  key: …`, `  # key: …`, `  - kind: …`."""
    return set(re.findall(r"^\s*(?:#\s*)?(?:-\s+)?([a-z_]+):", block, re.M))


def test_config_yaml_documents_every_key() -> None:
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^([a-z_]+):(.*?)(?=^[a-z_]+:|\Z)", text, re.M | re.S))
    missing: list[str] = []
    for name, field in config.Config.model_fields.items():
        if field.exclude:
            continue
        if name not in sections:
            missing.append(name)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            written = keys_written(sections[name])
            missing += [
                f"{name}.{key}" for key in field.annotation.model_fields if key not in written
            ]
    blocks = re.split(r"^(?=\s*(?:#\s*)?-\s+kind:)", sections.get("inputs", ""), flags=re.M)
    by_kind = {m.group(1): b for b in blocks if (m := re.search(r"kind:\s*(\w+)", b))}
    for model in input_models():
        kind = kind_of(model)
        written = keys_written(by_kind.get(kind, ""))
        missing += [f"inputs ({kind}).{key}" for key in model.model_fields if key not in written]
    assert missing == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"site": {"tittle": "x"}}, "site.tittle: unknown key (did you mean `title`?)"),
        ({"feeds": {"entrys": 3}}, "feeds.entrys: unknown key (did you mean `entries`?)"),
        (files(timezon="UTC"), "inputs[0].timezon: unknown key (did you mean `timezone`?)"),
        ({"colour": "red"}, "colour: unknown key"),  # nothing close: no guess
    ],
)
def test_a_misspelt_key_gets_the_likely_one(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(data)
    assert str(caught.value) == f"config.yaml: {message}"


def test_a_base_url_that_is_no_url_is_refused_not_a_crash_later() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"site": {"base_url": "http://[::1/"}})
    assert str(caught.value) == "config.yaml: site.base_url: not a valid URL (Invalid IPv6 URL)"
