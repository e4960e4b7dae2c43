"""The one exception type that the command-line scripts turn into a one-line message."""


class UserError(Exception):
    """Bad input or a situation the user can fix; printed as 'error: <message>'."""
