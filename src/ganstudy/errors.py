"""User-facing errors: one clear line, non-zero exit, never a traceback for bad input.

``run_stage`` lives here, not in ``cli``, because every stage script calls it: a stage's DVC
deps are the modules its script imports, and ``cli`` imports the whole package.
"""

import os
import sys
from collections.abc import Callable, Sequence


class GanstudyError(Exception):
    """An error caused by input the user can fix (config, files, names)."""


class UnknownNameError(GanstudyError, KeyError):
    """A name that is not in a registry; the message lists the valid choices."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def run_stage(
    main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None
) -> None:
    """Run a command; a user error becomes one line on stderr and exit status 2."""
    try:
        main(argv)
    except GanstudyError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # piped into a reader that stopped early (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        sys.exit(0)
