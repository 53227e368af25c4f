"""The base class of every error a user can fix (bad arguments, bad input, missing files).

The CLI prints these as one line, ``error: ...``, and exits with status 2; anything else is a bug and keeps its
traceback. This module imports nothing, so catching these costs nothing at start-up.
"""


class UserError(ValueError):
    """Something the user can fix; the message is one line meant for them."""
