"""`rxwatch lsp`: the language server for protocol files, over standard input and output."""

from __future__ import annotations

import typer

from .app import app


@app.command()
def lsp(
    stdio: bool = typer.Option(True, "--stdio/--no-stdio", help="Talk LSP over standard input and output (the only transport; the flag is accepted because editors pass it)."),
) -> None:
    """Run the language server (diagnostics, hover, definitions, references, completion, rename,
    outline, quick fixes, formatting) for an editor; see docs/editors.md."""
    from rxwatch.editor.lsp import main

    main()
