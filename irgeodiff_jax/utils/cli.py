"""What every ``python -m irgeodiff_jax.<tool>`` shares: exit statuses and console logging.

Usage and input errors (a bad or missing flag, an unreadable input, an unknown element, ...) end
with one line on stderr and exit status 2; ``run`` makes absl's flag-parsing errors do the same
(absl prints two lines and exits 1). Library log lines (absl INFO from Orbax and this package,
JAX's backend probing such as "Unable to initialize backend 'tpu'") stay off the console unless
the tool is run with ``--verbose`` (``quiet_library_logs``).
"""

import logging as std_logging
import sys
from collections.abc import Callable
from typing import NoReturn

from absl import app, flags, logging

USAGE_EXIT_STATUS = 2
LIBRARY_LOGGERS = ("jax", "orbax")  # Python loggers; absl's own is set by set_verbosity


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) replaced by one space."""
    return " ".join(str(text).split())


HELP_FLAGS = ("-h", "-help", "--help", "-helpshort", "--helpshort", "-helpfull", "--helpfull")


def exit_usage(message: object) -> NoReturn:
    """Prints ``message`` as one line on stderr and exits with status 2."""
    print(one_line(message), file=sys.stderr)
    sys.exit(USAGE_EXIT_STATUS)


def run(main: Callable, prog: str) -> None:
    """``app.run(main)``; a flag that does not parse is a one-line ``prog: error:``, status 2."""

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            exit_usage(f"{prog}: error: {_without_traceback(str(e))} (--helpshort lists the flags)")
        except SystemExit as e:  # absl's help flags print the flags, then exit with status 1
            if e.code == 1 and any(a.split("=")[0] in HELP_FLAGS for a in argv[1:]):
                sys.exit(0)
            raise

    app.run(main, flags_parser=parse)


def _without_traceback(message: str) -> str:
    """A config file's exception as rethrown by ``config_flags``: its first and last lines."""
    lines = [line for line in message.splitlines() if line.strip()]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        return f"{lines[0]} {lines[-1]}"
    return message


def int_list(values: list[str] | None, name: str, prog: str) -> tuple[int, ...] | None:
    """A ``DEFINE_list`` flag's strings as integers (None stays None); non-integers exit 2."""
    if values is None:
        return None
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        exit_usage(f"{prog}: error: {name}={','.join(values)}: expected comma-separated integers")


def config_value(holder: flags.FlagHolder, prog: str):
    """The value of a ``config_flags`` config-file flag; a file that did not load exits 2.

    ``config_flags`` defers a failure to read the file until the config is first used; this
    surfaces it as a usage error instead of a traceback inside the program.
    """
    config = holder.value
    try:
        config.get("")  # any access of a config that did not load raises its OSError
    except OSError as e:
        exit_usage(f"{prog}: error: --{holder.name}: {e}")
    return config


def quiet_library_logs(verbose: bool = False) -> None:
    """Shows INFO log lines only when ``verbose``; warnings and errors always."""
    level = std_logging.INFO if verbose else std_logging.WARNING
    logging.set_verbosity(logging.INFO if verbose else logging.WARNING)
    for name in LIBRARY_LOGGERS:
        std_logging.getLogger(name).setLevel(level)
