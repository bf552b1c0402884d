// Tokenize a file with the extension's TextMate grammar, as VS Code does (vscode-textmate and
// vscode-oniguruma, the devDependencies): node test/tokenize.js GRAMMAR FILE prints, for each line,
// [text, innermost scope] pairs as JSON. tests/test_highlight.py runs it when they are installed.
const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");
const wasm = fs.readFileSync(path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm")).buffer;
const onigLib = oniguruma.loadWASM(wasm).then(() => ({
  createOnigScanner: (p) => new oniguruma.OnigScanner(p),
  createOnigString: (s) => new oniguruma.OnigString(s),
}));
const [grammarPath, file] = process.argv.slice(2);
const registry = new vsctm.Registry({
  onigLib,
  loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
});
registry.loadGrammar("source.rxw").then((g) => {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  let stack = vsctm.INITIAL;
  const out = [];
  for (const line of lines) {
    const r = g.tokenizeLine(line, stack);
    out.push(r.tokens.map((t) => [line.substring(t.startIndex, t.endIndex), t.scopes[t.scopes.length - 1]]));
    stack = r.ruleStack;
  }
  console.log(JSON.stringify(out));
});
