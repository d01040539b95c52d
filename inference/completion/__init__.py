"""The completion engine: context, prompt, stop rule, post-processing stages, typed-ahead cache, pipeline."""
