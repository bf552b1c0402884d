"""Editor tooling: the formatter, the language server and the highlighter of .rxw files (docs/editors.md)."""
