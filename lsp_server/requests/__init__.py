"""One module per request kind: its LSP method, its options, its concurrency rules (`RULES`) and
its handler, a few lines that convert LSP types and delegate (`lsp_server.server` registers them)."""
