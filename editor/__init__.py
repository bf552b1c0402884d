"""Editor tooling for protocol authors: the formatter (`fmt`), the language server (`lsp`),
the Pygments lexer (`highlight`) and the facts about the grammar they share (`grammar`).

Everything here follows grammar/protocol.lark as it is, read at import: the keywords are the
grammar's string literals, the formatter walks the parse tree that the grammar gives (every
token kept), and the language server reuses the compiler (`compile_source`) for its
diagnostics. A change of the grammar needs no change here unless it adds a new kind of
bracket or of layout. See docs/editors.md.
"""
