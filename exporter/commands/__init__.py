"""The command-line commands other than running the exporter: decode, listen, check-config,
simulate. Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error."""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line value that cannot be used; the message says what to give instead."""
