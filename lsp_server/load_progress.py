"""Model-load progress as LSP work-done progress: begin, report, end, in that order, whatever the timing."""

from __future__ import annotations

import uuid

from lsprotocol import types
from pygls.progress import Progress


class LoadProgress:
    """Turns a stream of (loading?, message) updates into one $/progress run per load.

    `window/workDoneProgress/create` is a request: begin is sent once the client answered it,
    and a load that ended meanwhile is ended right after its begin.
    """

    def __init__(self, progress: Progress, title: str = "codet5-lsp") -> None:
        self._progress = progress
        self._title = title
        self._token: str | None = None
        self._begun = False
        self._loading = False
        self._message = ""

    def update(self, loading: bool, message: str) -> None:
        self._loading, self._message = loading, message
        if loading and self._token is None:
            self._token = token = f"codet5-load-{uuid.uuid4().hex[:8]}"
            self._begun = False
            self._progress.create(token).add_done_callback(lambda _: self._on_created(token))
        elif self._begun and self._token is not None:
            self._send(self._token)

    def _on_created(self, token: str) -> None:
        if token != self._token:
            return
        self._progress.begin(token, types.WorkDoneProgressBegin(title=self._title, message=self._message))
        self._begun = True
        if not self._loading:
            self._send(token)

    def _send(self, token: str) -> None:
        if self._loading:
            self._progress.report(token, types.WorkDoneProgressReport(message=self._message))
        else:
            self._progress.end(token, types.WorkDoneProgressEnd(message=self._message))
            self._token, self._begun = None, False
