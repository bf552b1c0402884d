"""Static analysis of a checked protocol (E6xx / W6xx): see docs/verification.md."""

from __future__ import annotations


def check(module, graph, diags) -> None:
    """Run every analysis over the compiled graph; findings go to `diags`."""
    return None
