"""One exception type for every user-facing failure.

The CLI prints ``DnasError`` as a single line (no traceback), so every message must name the
field or file at fault and say how to fix it.
"""


class DnasError(Exception):
    """A user-facing error: bad config, bad genotype, bad data, diverged training."""


class ConfigError(DnasError):
    """A config field is missing, mistyped or out of range."""


class GenotypeError(DnasError):
    """A genotype is malformed (unknown op, input out of range, wrong edge count...)."""


class DataError(DnasError):
    """A dataset could not be found or parsed."""


class DivergenceError(DnasError):
    """The loss became NaN or infinite."""
