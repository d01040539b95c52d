"""The embedded offline summarizer, by CodeT5+'s recipe: a completion model (SmolLM2-135M, or
Qwen2.5-Coder-0.5B with `--decoder`) as a frozen decoder, a shallow encoder and cross-attention
trained here.

`python -m quantize.summarizer all` runs the whole recipe: collect (function, first docstring
sentence) pairs from permissively licensed Python code on this machine (`data`), train the encoder
and cross-attention on them (`train`; restarted with the same command, it resumes from its last
checkpoint), and put the trained delta and its model card inside the package (`ship`).
"""
