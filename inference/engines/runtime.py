"""The CTranslate2 runtime, loaded with OpenMP's wait policy set first: import it from here.

OpenMP threads that spin while idle starve the Python threads that feed CTranslate2 between
decoding steps: on this 2-core machine a one-line completion through the server took 15.8 s
with the default policy and 1.35 s with PASSIVE (measured with `codet5-lsp complete`). It must
be set before the runtime loads; a user's explicit setting wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import ctranslate2  # noqa: E402  (after the policy)

__all__ = ["ctranslate2"]
