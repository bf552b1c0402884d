"""The `rxwatch` command line: thin typer commands over the library (see docs/cli.md)."""
