"""The embedded offline summarizer: a compact CodeT5-architecture (T5) model trained here.

`python -m quantize.summarizer all` runs the whole recipe: collect (function, first docstring
sentence) pairs from permissively licensed Python code on this machine (`data`), train a
byte-level BPE tokenizer and a small T5 on them (`train`), and convert the result to CTranslate2
int8 inside the package (`convert`).
"""
