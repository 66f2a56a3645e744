"""Stop sequences applied to the output text as it streams."""

from __future__ import annotations

import re
from collections.abc import Sequence

# A sentence ends at . ! ? or … (closing quotes/brackets may follow) before a space or the end;
# "3.5" or "e.g.x" do not end one, "Dr. Smith" does (a rare cut too early, never mid-word).
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s|$)")


def cut_at_sentence_end(text: str) -> str:
    """The text up to its last complete sentence; unchanged when it has none."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends else text


class StopScanner:
    """Releases streamed text, holding back any tail that could still become a stop sequence."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Take new text; return what can be sent now (nothing more once a stop matched)."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        self._pending += text
        hits = [i for i in (self._pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            out = self._pending[: min(hits)]
            self._pending = ""
            return out
        keep = self._partial_tail()
        out = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(self._pending) - keep :]
        return out

    def flush(self) -> str:
        """Release what was held back once generation has ended."""
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out

    def _partial_tail(self) -> int:
        # Longest suffix of the pending text that is a proper prefix of some stop sequence.
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self._pending)), best, -1):
                if self._pending.endswith(stop[:n]):
                    best = n
                    break
        return best
