"""ConfigError: a value the configuration does not allow, reported before any data is read.

    python -m initmem train --optimizer sgdd     # error: optimizer='sgdd' is not allowed: one of [...]

Its own module because every layer raises it (the run config, the registries, the study, the CLIs);
`initmem.config.ConfigError` is the same class.
"""


class ConfigError(ValueError):
    """A configuration value is not allowed. The message names field, value and what is allowed."""
