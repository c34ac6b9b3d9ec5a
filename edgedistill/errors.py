"""Errors a user can cause. The CLI prints them as one paragraph, without a traceback, and exits non-zero: 2 for a
refusal of the input (as click's own usage errors), 1 for a run that did its work and failed a check (RunFailed)."""

INPUT_REFUSED = 2  # every command: a bad input / option / file, refused (click's usage errors exit 2 too)
RUN_FAILED = 1  # every command: it ran and what it made failed a check (parity, the gate, a profile that does not fit)


class EdgeDistillError(Exception):
    """Base class for every error caused by the user's input (files, data, config, budgets). `exit_code`: the CLI's
    exit status for it (INPUT_REFUSED; RunFailed and its subclasses: RUN_FAILED)."""

    exit_code = INPUT_REFUSED


class RunFailed(EdgeDistillError):
    """The run did its work and what it made failed a check: an exported file that does not compute what was trained,
    QAT that collapsed, training that diverged. Exit status RUN_FAILED, as a failed gate."""

    exit_code = RUN_FAILED


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
