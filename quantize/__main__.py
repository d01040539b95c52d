"""`python -m quantize` runs the `codet5-quantize` command."""

from quantize.cli import main

raise SystemExit(main())
