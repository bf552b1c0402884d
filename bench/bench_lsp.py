"""Latency of the language server's diagnostics after an edit, on a warm server.

    .venv/bin/python bench/bench_lsp.py [--protocol protocols/anakinra_hepatotoxicity.rxw] [--edits 30] [--goal-ms 300]

What is measured: `rxwatch lsp` is started as editors start it (a subprocess over stdio); the
protocol is opened and its first diagnostics awaited (the warm-up: the parser tables, the
verifier's solver); then, --edits times, one edit is sent (`textDocument/didChange`, the whole
text, as VS Code sends it for a small file) and the clock runs until the diagnostics of that
version arrive (`textDocument/publishDiagnostics`). Edits alternate between a typo in a guard
(an E202 with its "did you mean") and the text as shipped (no error: the verifier runs), so both
paths are timed. Each latency includes the server's debounce (rxwatch.editor.lsp.DEBOUNCE_SECONDS),
the compile with the verifier, and the round trip through the pipes. Prints the median, the 90th
percentile and the worst; exits 1 when the median exceeds --goal-ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

REPO = Path(__file__).resolve().parent.parent


async def run(path: Path, edits: int) -> list[tuple[str, float, int]]:
    client = LanguageClient("bench-lsp", "1")
    arrived: dict[int, float] = {}
    counts: dict[int, int] = {}
    event = asyncio.Event()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def _diags(params: lsp.PublishDiagnosticsParams) -> None:
        if params.version is not None:
            arrived[params.version] = time.perf_counter()
            counts[params.version] = len(params.diagnostics)
            event.set()

    await client.start_io(sys.executable, "-m", "rxwatch.cli.main", "lsp")
    await client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities(), root_uri=REPO.as_uri()))
    client.initialized(lsp.InitializedParams())
    text = path.read_text(encoding="utf-8")
    uri = path.resolve().as_uri()

    async def wait(version: int) -> float:
        while version not in arrived:
            event.clear()
            await asyncio.wait_for(event.wait(), 30)
        return arrived[version]

    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        text_document=lsp.TextDocumentItem(uri=uri, language_id="rxw", version=1, text=text)))
    await wait(1)
    typo = _typo(text, str(path))
    results = []
    for k in range(edits):
        version = k + 2
        edited = typo if k % 2 == 0 else text
        start = time.perf_counter()
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=edited)]))
        end = await wait(version)
        results.append(("typo" if k % 2 == 0 else "clean", (end - start) * 1000, counts[version]))
        await asyncio.sleep(0.05)  # an author's pause between edits
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return results


def _typo(text: str, path: str) -> str:
    """`text` with the first name read in a guard misspelt (a letter added): an E202."""
    from rxwatch.compiler import ast, compile_source
    from rxwatch.compiler.symbols import walk_expr

    module = compile_source(text, path, verify=False, lower=False).module
    refs = [e for st in module.states for h in st.handlers for r in h.rules if r.guard is not None
            for e in walk_expr(r.guard) if isinstance(e, ast.Ref)]
    ref = min(refs, key=lambda e: (e.span.line, e.span.column))
    lines = text.split("\n")
    line = lines[ref.span.line - 1]
    end = ref.span.column - 1 + len(ref.name)
    lines[ref.span.line - 1] = line[:end] + "x" + line[end:]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocol", type=Path, default=REPO / "protocols" / "anakinra_hepatotoxicity.rxw")
    ap.add_argument("--edits", type=int, default=30)
    ap.add_argument("--goal-ms", type=float, default=300.0)
    args = ap.parse_args()
    from rxwatch.editor.lsp import DEBOUNCE_SECONDS

    results = asyncio.run(run(args.protocol, args.edits))
    lat = sorted(ms for _, ms, _ in results)
    med = statistics.median(lat)
    p90 = lat[min(len(lat) - 1, int(0.9 * len(lat)))]
    print(f"{args.protocol.name}: {len(lat)} edits, debounce {DEBOUNCE_SECONDS * 1000:.0f} ms")
    for kind in ("typo", "clean"):
        ms = sorted(m for k, m, _ in results if k == kind)
        n = next(c for k, _, c in results if k == kind)
        print(f"  {kind:5} ({n} diagnostics): median {statistics.median(ms):6.1f} ms, worst {ms[-1]:6.1f} ms")
    print(f"  all: median {med:.1f} ms, p90 {p90:.1f} ms, worst {lat[-1]:.1f} ms (goal: median under {args.goal_ms:.0f} ms)")
    return 0 if med <= args.goal_ms else 1


if __name__ == "__main__":
    sys.exit(main())
