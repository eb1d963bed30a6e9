"""The one error type that means "the user's input is wrong" (exit code 2)."""


class UserError(Exception):
    """Bad study file, bad data or a missing resource: the message says what and where.

    The CLI prints the message without a traceback and exits with code 2.
    """
