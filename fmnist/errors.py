"""A problem the user can fix is one line on stderr, never a traceback."""

import functools
import signal
import sys


class UserError(Exception):
    """Bad input (a param, a file, an argument): the message names it, its value and what is allowed."""


def one_line_errors(main):
    """Wrap a command's main(): a UserError is printed as `error: ...` (exit 2), an interrupt as one line (130)."""

    @functools.wraps(main)
    def run(argv=None):
        # SIGTERM (dvc queue kill, a CI timeout) unwinds like Ctrl-C, so a
        # write in progress removes its temporary file on the way out.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return main(argv)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: no output was left half-written", file=sys.stderr)
            sys.exit(130)

    return run


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
