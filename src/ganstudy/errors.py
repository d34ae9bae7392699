"""User-facing errors: one clear line, non-zero exit, never a traceback for bad input."""


class GanstudyError(Exception):
    """An error caused by input the user can fix (config, files, names)."""


class UnknownNameError(GanstudyError, KeyError):
    """A name that is not in a registry; the message lists the valid choices."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
