"""The errors a user causes with a bad configuration or bad data: the bottom of the package (imports nothing), so
that every layer may raise them. ``lrcbert.config`` and ``lrcbert.data`` re-export them where they were defined
before."""


class ConfigError(ValueError):
    """A bad key or value in a run configuration (message names it)."""


class DataError(ValueError):
    """Missing or malformed data (message names the file, line, column or value)."""
