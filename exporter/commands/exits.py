"""Exit codes of every command (0 ok, 1 runtime failure, 2 usage or configuration error) and the
error a command raises for a value it cannot use."""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line value that cannot be used; the message says what to give instead."""
