"""User-facing errors: each names the file and the field at fault, so the CLI can print one clear line."""

from __future__ import annotations

from pathlib import Path


class WorldsimError(Exception):
    """An error caused by the user's input, reported without a traceback by the CLI.

    `source` is the file (or object) that holds the bad input and `field` the key, argument or array in it.
    """

    def __init__(self, message: str, *, source: str | Path | None = None, field: str | None = None):
        self.message = message
        self.source = None if source is None else str(source)
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.source, self.field) if part)
        return f"{where}: {self.message}" if where else self.message


def text_position(error: BaseException) -> str:
    """`line N` of a parse error: from a YAML error's marks (the context's line, where the bad construct starts,
    else the problem's), or from a parser's message (MuJoCo says `line 27` or `Line number=27`); else `line ?`."""
    import re

    mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
    if getattr(mark, "line", None) is not None:
        return f"line {mark.line + 1}"
    m = re.search(r"line(?: number)?\s*=?\s*(\d+)", str(error), re.I)
    return f"line {m.group(1)}" if m else "line ?"


class SceneError(WorldsimError):
    """A scene's MJCF or spec is malformed, or a scene name is unknown."""


class ActionError(WorldsimError):
    """An action has the wrong shape, dtype, or non-finite values."""


class StoreError(WorldsimError):
    """A zarr store is missing, of another schema, truncated, or already being written."""


class ConfigError(WorldsimError):
    """A configuration file or argument is invalid."""


class WeightsError(WorldsimError):
    """A weights file is corrupt, tampered with, or made for another scene or setting."""
