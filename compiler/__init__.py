"""The rxwatch compiler: protocol source -> parse -> AST -> checks -> networkx graph.

    from rxwatch.compiler import compile_file
    result = compile_file("protocols/anakinra_hepatotoxicity.rxw")
    result.diagnostics   # every finding, errors and warnings, sorted by position
    result.graph         # the compiled state machine (None when there were errors)

Each pass is its own module: `parser` (source -> AST) with `checks.text`, `checks.names`, `checks.types`,
`checks.structure`, `verify` (static analysis of the rules), `lower` (AST -> graph).
A pass that reports errors stops the pipeline after it; every error of that pass is kept.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field

from .diagnostics import Diagnostic, Diagnostics
from .span import Span

__all__ = ["CompileResult", "Diagnostic", "Span", "compile_file", "compile_source"]


@dataclass
class CompileResult:
    path: str
    source: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    module: object | None = None  # the AST (rxwatch.compiler.ast.Module)
    graph: object | None = None  # networkx.MultiDiGraph, None when there were errors
    accepted: list = field(default_factory=list)  # (Diagnostic, ast.Accept): warnings the author accepted

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


@contextmanager
def collector_paused():
    """Pause the cyclic garbage collector while the passes build their trees.

    Parse trees, AST nodes and graph attributes are acyclic and all alive until the end:
    the collector can free nothing, but its full collections rescan every object so far,
    which made a 10,000-state protocol cost more than linear time (docs/performance.md).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_source(text: str, path: str = "<string>", *, verify: bool = True, lower: bool = True) -> CompileResult:
    """Run every pass over one protocol text. Never raises for the author's mistakes."""
    with collector_paused():
        return _compile(text, path, verify=verify, lower=lower)


def _compile(text: str, path: str, *, verify: bool, lower: bool) -> CompileResult:
    from . import parser
    from .checks import names, structure, types
    from .symbols import build

    if text.startswith("\ufeff"):  # a byte-order mark, as some editors save UTF-8
        text = text[1:]
    diags = Diagnostics()
    result = CompileResult(path, text)
    module = parser.parse(text, path, diags)
    result.module = module
    if module is not None:  # with the syntax pass: control characters in strings, long names
        from .checks import text as texts

        texts.check(module, text, diags)
    if module is not None and not diags.has_errors:
        sym = build(module)
        names.check(module, sym, diags)
        let_types = types.check(module, sym, diags)
        structure.check(module, sym, diags)
        graph = None
        if not diags.has_errors:
            if lower or verify:
                from .lower import lower as lower_graph

                graph = lower_graph(module, sym, let_types)
            if verify:
                from . import verify as verify_pass

                verify_pass.check(module, graph, diags)
        from .checks import accepts

        # an unused `accept` is only stale when every pass that could have matched it ran
        result.accepted = accepts.apply(module, diags, report_unused=verify and graph is not None)
        if graph is not None and not diags.has_errors and lower:
            graph.graph["accepted"] = [
                {"code": d.code, "message": d.message, "reason": a.reason, "span": d.span.to_dict()} for d, a in result.accepted
            ]
            result.graph = graph
    result.diagnostics = diags.sorted()
    return result


def compile_file(path: str, **kwargs) -> CompileResult:
    """Read and compile a protocol file. OSError and UnicodeDecodeError reach the caller."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return compile_source(text, str(path), **kwargs)
