"""The project's own exception types.

Every mistake a user can make (a bad config, a bad command-line value, a missing
dataset, an unreadable runs folder) raises a subclass of :class:`NnexpError`.
The command line turns these into one short message and exit status 2; anything
else is a bug in nnexp and keeps its traceback.
"""

from __future__ import annotations


class NnexpError(Exception):
    """Base class of every error caused by the user's input or environment."""

    exit_code = 2


class ConfigError(NnexpError):
    """The config file, a ``--set`` override or a command-line value is invalid."""


class DataError(NnexpError):
    """The dataset is missing, corrupt or cannot be read or downloaded."""


class RunError(NnexpError):
    """A run or sweep folder is missing, unreadable or cannot be written."""
