"""The stage table: one handler per stage kind, looked up by the name the YAML uses.

A new stage kind is one module here (a class with `skip` and `handle`) and one line in
`HANDLERS`, plus its place, capability and options in `config.py` (STAGE_ORDER,
STAGE_CAPABILITY, ALLOWED_OPTIONS), which the loader validates a pipeline file against.
"""

from __future__ import annotations

from typing import Protocol

from services.orchestrator.config import EffectiveStage
from services.orchestrator.handlers.audio import Denoise, Transcribe
from services.orchestrator.handlers.guards import GuardInput, GuardOutput
from services.orchestrator.handlers.llm import Converse
from services.orchestrator.handlers.tts import Speak
from services.orchestrator.run import Run


class StageHandler(Protocol):
    """One stage kind: when a request skips it, and what it does with the request."""

    def skip(self, run: Run) -> str | None:
        """Why this stage does not run for this request (its record's note), or None."""
        ...

    async def handle(self, run: Run, stage: EffectiveStage) -> None:
        """Call the stage's providers (`run.execute`) and put what they gave into `run`."""
        ...


HANDLERS: dict[str, StageHandler] = {
    "denoise": Denoise(),
    "stt": Transcribe(),
    "guard_input": GuardInput(),
    "llm": Converse(),
    "guard_output": GuardOutput(),
    "tts": Speak(),
}
