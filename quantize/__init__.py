"""Offline conversion: `codet5-quantize` (HF dir, hub id or GGUF -> CTranslate2 or bitsandbytes)."""
