"""Adding inputs to config.yaml without losing what a person wrote in it (owns ruamel.yaml).

PyYAML would drop every comment of the file on the way back out; ruamel.yaml's round-trip
mode keeps comments, order and quoting, so `aggregator add` and `import-opml` change only the
list of inputs.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aggregator import config
from aggregator.errors import ConfigError


def add_inputs(path: str | os.PathLike[str], inputs: Sequence[dict[str, Any]]) -> list[str]:
    """Append feed inputs to the file's `inputs` list; returns the names added.

    An input whose URL is already configured is left out, and a name already taken gets a
    number. The file is replaced atomically.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    file = Path(path)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    try:
        data = yaml.load(file.read_text(encoding="utf-8-sig")) if file.exists() else None
    except Exception as exc:  # ruamel raises many types; any means the file cannot be edited
        raise ConfigError(f"{file}: cannot edit ({' '.join(str(exc).split())[:200]})") from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of keys")
    existing = data.get("inputs")
    if existing is None:
        existing = data["inputs"] = CommentedSeq()
    if not isinstance(existing, list):
        raise ConfigError(f"{file}: inputs: must be a list")
    urls = {str(i.get("url")) for i in existing if isinstance(i, dict) and i.get("url")}
    names = {str(i.get("name")) for i in existing if isinstance(i, dict) and i.get("name")}
    added: list[str] = []
    for spec in inputs:
        if spec["url"] in urls:
            continue
        name = base = spec["name"]
        n = 2
        while name in names:
            name, n = f"{base} ({n})", n + 1
        entry = CommentedMap()
        entry["kind"] = "feed"
        entry["url"] = spec["url"]
        entry["name"] = name
        for key in ("source", "tags"):
            if spec.get(key):
                entry[key] = list(spec[key]) if key == "tags" else spec[key]
        existing.append(entry)
        urls.add(spec["url"])
        names.add(name)
        added.append(name)
    if added:
        out = io.StringIO()
        yaml.dump(data, out)
        text = out.getvalue()
        # what is written must still be a valid configuration
        config.parse(_plain_load(text), base_dir=file.resolve().parent, origin=str(file))
        tmp = file.with_name(f".{file.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, file)
    return added


def _plain_load(text: str) -> dict[str, Any]:
    import yaml

    data = yaml.load(text, Loader=yaml.CSafeLoader)
    return data if isinstance(data, dict) else {}
