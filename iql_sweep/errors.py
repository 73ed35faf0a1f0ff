"""Errors the project raises for bad input; each message names the field and the fix."""

from __future__ import annotations


class IQLSweepError(Exception):
    """Base class of the project's user-facing errors."""


class ConfigError(IQLSweepError, ValueError):
    """An invalid hyper-parameter, preset or command-line value."""


class DatasetNotFoundError(IQLSweepError, FileNotFoundError):
    """A dataset id that is not in the local Minari root."""


class DatasetError(IQLSweepError, ValueError):
    """A dataset that exists but cannot be trained on (NaNs, actions out of bounds, empty...)."""


class TrainingDivergedError(IQLSweepError, FloatingPointError):
    """Losses became NaN/inf during training; the last good checkpoint is kept."""
