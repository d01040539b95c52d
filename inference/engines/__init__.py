"""What runs a model: the CTranslate2, ONNX Runtime, transformers and OpenAI-compatible engines, the local
`CodeModel` and its remote sibling behind one `CompletionModel` protocol, `load_model`, the
tokenizer and the token streams. Nothing is imported here."""
