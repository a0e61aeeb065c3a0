"""The one exception type for problems a user can fix."""


class UserError(Exception):
    """A problem the user can fix (bad params, bad data, missing weights).

    Entry points print its message as one line and exit with status 2,
    without a traceback unless ``--debug`` is given (see ``hseg.cli``).
    """
