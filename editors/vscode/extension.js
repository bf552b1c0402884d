// The rxwatch extension: starts `rxwatch lsp` (settings rxwatch.server.command and
// rxwatch.server.args) for .rxw files. Highlighting comes from syntaxes/rxw.tmLanguage.json,
// generated from the grammar (python -m rxwatch.editor.highlight textmate).
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("rxwatch");
  const folder = (vscode.workspace.workspaceFolders || [])[0];
  // settings of an extension are not expanded by VS Code: ${workspaceFolder} is done here
  const expand = (s) => (folder ? s.split("${workspaceFolder}").join(folder.uri.fsPath) : s);
  const command = expand(config.get("server.command", "rxwatch"));
  const args = config.get("server.args", ["lsp"]).map(expand);
  const serverOptions = {
    run: { command, args, transport: TransportKind.stdio },
    debug: { command, args, transport: TransportKind.stdio },
  };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "rxw" }, { scheme: "untitled", language: "rxw" }],
    outputChannelName: "rxwatch",
  };
  client = new LanguageClient("rxwatch", "rxwatch", serverOptions, clientOptions);
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("rxwatch.server")) {
        vscode.window.showInformationMessage("rxwatch: reload the window to restart the language server with the new settings.");
      }
    })
  );
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
