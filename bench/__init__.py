"""Latency and quality harnesses for codet5-lsp: keystroke replay through the LSP server,
HumanEval single-line infilling, and the report (RESULTS.md, plots) built from their results."""
