"""`python -m quantize.summarizer` runs the embedded summarizer's recipe."""

from quantize.summarizer.cli import main

raise SystemExit(main())
