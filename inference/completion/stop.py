"""The stop rule: where a completion ends, fed the growing text while the model writes it.

The one stop rule of a completion: generation stops when it fires, and post-processing cuts
the text where it fired (a no-op on text already cut).
"""

from __future__ import annotations

import re

from .indentation import lead, width
from .request import CompletionRequestText
from .scan import MULTILINE_QUOTES, scan

# A line ending like this continues on the next one: a newline right after it is no completion.
_CONTINUES = re.compile(
    r"(?:[-+*/%=<&|^~!.@]|->|=>|\b(?:and|or|not|in|is|if|elif|while|for|import|from|as|with|lambda|await"
    r"|def|class|let|const|var|function|fn|func))\Z"
)
_ENDS_STATEMENT = re.compile(r"(?:\+\+|--|\*/|\.\.\.|\bimport \*)\Z")

# A line that starts a new definition (or its decorator/attribute) in Python or a brace language.
_DEFINITION = re.compile(
    r"@\w|#!?\["
    r"|(?:export|public|private|protected|internal|static|abstract|final|override|unsafe)\s+\w"
    r"|async\s+(?:def|function|fn)[\s*(]"
    r"|pub(?:\([\w:\s]*\))?\s+\w"
    r"|(?:def|class|function\*?|fn|fun|func|struct|enum|trait|interface|namespace|type|impl)\s+[\w(<{]"
    r"|impl<"
)
_DECORATOR = re.compile(r"@\w|#!?\[")
_COMMENT = re.compile(r"#(?!!?\[)|//|/\*|\*(?:/|\s|\Z)")


def _allows_leading_newline(request: CompletionRequestText) -> bool:
    """Whether the completion may start on the next line: the cursor ends a line whose code is
    complete (``def f():``, ``{``, ``x = 1``), not ``x =``, ``foo.`` or an open one-line string."""
    head = request.line_prefix.rstrip()
    if request.line_suffix.strip() or not head.strip():
        return False
    context = request.text_before()
    tokens = scan(context)
    last = tokens[-1] if tokens else None
    if last is not None and last.end == len(context):  # the cursor is inside a comment or string
        return last.kind == "comment" or last.char in MULTILINE_QUOTES
    return bool(_ENDS_STATEMENT.search(head)) or not _CONTINUES.search(head)



class StopDetector:
    """Incremental stop rule: fed the growing raw completion, says where it ends.

    Single-line mode: the completion ends at the first newline after some code. A newline
    (and indentation) before any code is allowed once, when the cursor ends a line whose code
    is complete (``def f():`` then ``\\n    return x``); the completion is then that next line.

    Block mode: the completion ends where a line is indented less than the block (the cursor
    line's indentation when it holds code, else the first line's), at two consecutive blank
    lines, or where a new definition starts at the block's indentation or less after some code
    (at indentation 0 that is a new top-level definition). The cut then goes back to the end
    of the last code line, before blank lines and the comments attached to that definition.
    """

    def __init__(self, request: CompletionRequestText) -> None:
        self._request = request
        self._leading_newline = _allows_leading_newline(request)
        # On an empty line a single-line completion may start with blank lines: they are dropped
        # (`skip_leading_blank_lines`) and the code goes on the cursor's line.
        self._blank_cursor_line = request.on_blank_line()
        self._prefix_has_code = bool(request.line_prefix.strip())
        self._restart()

    def _restart(self) -> None:
        self._text = ""
        self._line_start = 0  # where the first line not yet complete starts
        self._line_no = 0
        self._cut: int | None = None
        self._base = width(lead(self._request.line_prefix))  # the block's indentation
        self._blank_run = 0  # consecutive blank lines just seen
        self._last_end = 0  # end of the last line with code
        self._attach_end = 0  # end of the last line with code that is no comment or decorator
        self._after_decorator = False
        self._body_seen = False  # the model wrote code that is no comment or decorator

    def feed(self, text: str) -> int | None:
        """`text` is the whole completion so far; return the cut index once the rule has fired
        (the caller stops decoding and keeps text[:cut]), else None."""
        if not text.startswith(self._text):
            self._restart()
        self._text = text
        while self._cut is None:
            newline = text.find("\n", self._line_start)
            complete = newline >= 0
            end = newline if complete else len(text)
            line = text[self._line_start : end]
            self._cut = self._check(line, end, complete)
            if self._cut is not None or not complete:
                break
            self._advance(line, end)
            self._line_start = newline + 1
            self._line_no += 1
        return self._cut

    def _check(self, line: str, end: int, complete: bool) -> int | None:
        """The cut if `line` (ending at `end`) ends the completion; decided on what is final already."""
        has_code = bool(line.strip())
        if not self._request.multiline:
            if not complete or (not has_code and (self._blank_cursor_line or (self._line_no == 0 and self._leading_newline))):
                return None
            return end
        if self._line_no == 0:
            return end if complete and not has_code and not self._leading_newline else None
        if not has_code:
            return self._last_end if complete and self._blank_run >= 1 else None
        columns = width(lead(line))
        if columns < self._base:
            return self._last_end
        if columns == self._base and self._body_seen and not self._after_decorator and _DEFINITION.match(line.lstrip()):
            return self._attach_end
        return None

    def _advance(self, line: str, end: int) -> None:
        """Take a complete line that did not end the completion into account."""
        if not line.strip():
            if self._line_no > 0:
                self._blank_run += 1
            return
        full = self._request.line_prefix + line if self._line_no == 0 else line
        if self._line_no == 0 and not self._prefix_has_code:
            self._base = width(lead(full))
        self._blank_run = 0
        self._last_end = end
        head = full.strip()
        self._after_decorator = bool(_DECORATOR.match(head))
        if not self._after_decorator and not _COMMENT.match(head):
            self._body_seen = True
            self._attach_end = end



def apply_stop(text: str, request: CompletionRequestText) -> str:
    """The text the stop rule keeps."""
    cut = StopDetector(request).feed(text)
    return text if cut is None else text[:cut]
