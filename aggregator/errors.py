"""The exceptions aggregator raises, all under one root.

    AggregatorError
     ├── ConfigError        the configuration file is missing, malformed or invalid
     ├── SourceError        one input or one item of it could not be read
     │    └── ParseError    a file or document is not something we can read (bad YAML, binary…)
     ├── StoreError         the database is unreachable or refused an operation
     └── PublishError       the output folder cannot be written

Each is raised with a message meant for a person: what (a path, a URL, a key) and why, in one
line. Third-party exceptions are translated where their library is used (`raise … from`), so
callers only ever catch these. A bug in aggregator itself is not caught and shows its traceback.
"""


class AggregatorError(Exception):
    """Root of every error aggregator reports to a user."""


class ConfigError(AggregatorError):
    """The configuration is missing, malformed, or names an unknown key or a wrong type."""


class SourceError(AggregatorError):
    """An input (a folder, a feed) or one item in it could not be read."""


class ParseError(SourceError):
    """A file or document is not a post we can read; the item is skipped, the run goes on."""


class StoreError(AggregatorError):
    """The database is unreachable, or refused an operation."""


class PublishError(AggregatorError):
    """A published file could not be written."""
