"""Population audit: a protocol over a whole clinic's lab data (docs/audit.md)."""
