"""Errors of source connectors: which source and connector, which URL (never a secret) or file."""

from pipelines.errors import MegawattError


class SourceError(MegawattError):
    """A source could not be read: the API failed or answered nonsense, or a drop file is wrong.

    The message names the connector and table, the URL (secrets redacted) or file, and what was
    wrong. Nothing is written when it is raised: the asset fails, the table stays as it was.
    """


class NotArrived(SourceError):
    """A source has no data for the window (or part) yet: its files have not arrived."""
