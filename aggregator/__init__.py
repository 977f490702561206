"""aggregator: archives of saved posts and live feeds in, deduplicated Atom/RSS/JSON feeds out."""

__version__ = "0.1.0"
