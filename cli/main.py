"""Entry point of the `rxwatch` console script.

Commands live in their own modules and register on `app`; each reads its input, calls
one library function, reports, and exits with the status of docs/cli.md. The one place
that turns an unexpected exception into exit status 3 is `main` below.
"""

from __future__ import annotations

import sys

from .app import app
from . import audit, cases, check, cohort, compile, fmt, lsp, render, simulate, test  # noqa: F401  (commands register themselves on `app`)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return its exit status (usage errors are typer's: status 2)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args = [a for a in args if a != "--debug"]
    import warnings

    from .output import say

    def show(message, category, *rest, **kw) -> None:
        # a library's warning (ruamel's ReusedAnchorWarning quotes the file) is one escaped line
        first = next((line for line in str(message).splitlines() if line.strip()), "")
        say(f"warning: {category.__name__}: {first.strip()}")

    try:
        with warnings.catch_warnings():  # each run shows its warnings (a fresh registry), as its own process would
            warnings.simplefilter("default")
            warnings.showwarning = show
            app(args=args, prog_name="rxwatch")
    except SystemExit as e:  # typer ends every run, successful or not, with SystemExit
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        print("rxwatch: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the one place: an internal error, never the author's
        if debug:
            raise
        say(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)")
        return 3
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
