"""The typer application that every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="rxwatch",
    help=(
        "Write, verify, simulate and draw drug-monitoring protocols.\n\n"
        "Exit status: 0 done (warnings may be printed); 1 the input is wrong (a protocol with "
        "errors, an invalid timeline, a failing scenario); 2 the command cannot run (bad usage, "
        "a missing or unreadable file, an output that cannot be written, Graphviz missing or failing); "
        "3 an internal error (add --debug for the traceback)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("rxwatch")
        except PackageNotFoundError:  # run from a source tree that was never installed
            number = "unknown (not installed)"
        from ..compiler.lower import FORMAT

        typer.echo(f"rxwatch {number} (compiles to {FORMAT})")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print rxwatch's version and exit."
    ),
) -> None:
    """Write, verify, simulate and draw drug-monitoring protocols."""
