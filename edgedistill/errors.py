"""Errors a user can cause. The CLI prints them as one paragraph, without a traceback, and exits non-zero."""


class EdgeDistillError(Exception):
    """Base class for every error caused by the user's input (files, data, config, budgets)."""


class ConfigError(EdgeDistillError):
    """The configuration is invalid or self-contradictory."""


class DataError(EdgeDistillError):
    """The data cannot be read or does not fit the task (shape, labels, NaNs)."""


class ModelLoadError(EdgeDistillError):
    """A model file is missing, corrupt, or in a form we refuse to load (e.g. a pickle)."""


class MissingDependencyError(EdgeDistillError):
    """An optional package is needed for this step and is not installed."""


class DeviceError(EdgeDistillError):
    """A device runner could not measure: unreachable device, timeout, missing interpreter, unreadable answer."""
