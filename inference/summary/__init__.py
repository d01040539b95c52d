"""Summaries of functions: the code the summarizer reads, the sentence kept, the summary cache, BLEU."""
