"""What the stop rule and the post-processing stages know of a request: the text around the cursor."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CompletionRequestText:
    """The text around the cursor that the stop rule and the stages look at."""

    line_prefix: str  # text of the cursor's line before the cursor
    line_suffix: str = ""  # text of the cursor's line after the cursor
    prev_lines: list[str] = field(default_factory=list)  # a few lines before the cursor line, nearest last
    next_lines: list[str] = field(default_factory=list)  # a few lines after the cursor line, nearest first
    multiline: bool = False  # block completion allowed (else single line)
    indent: str = ""  # indentation of a new line at the cursor's block level

    def text_before(self) -> str:
        """The text before the cursor that the request shows: previous lines and the line prefix."""
        return "".join(line + "\n" for line in self.prev_lines) + self.line_prefix

    def full_lines(self, lines: list[str]) -> list[str]:
        """A completion's `lines` as they read in the file: the first one after the line prefix."""
        return [self.line_prefix + lines[0], *lines[1:]]

    def on_blank_line(self) -> bool:
        """A single-line completion on a line with nothing but indentation before and after the cursor."""
        return not self.multiline and not self.line_prefix.strip() and not self.line_suffix.strip()
