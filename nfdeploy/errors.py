"""The one exception type that library code raises for user-facing problems."""


class NfdeployError(Exception):
    """A problem with the user's input or environment, with a message saying what to do.

    The CLI turns it into a one-line ``click.ClickException``; library callers catch it.
    """
