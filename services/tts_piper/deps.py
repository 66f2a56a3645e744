"""What tts-piper holds once its voices have passed the self-check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.kit.deps import provide
from services.tts_piper.service import PiperSpeaker
from services.tts_piper.settings import Settings


@dataclass(frozen=True)
class Deps:
    """tts-piper's dependencies."""

    settings: Settings
    service: PiperSpeaker


DepsDep = Annotated[Deps, Depends(provide(Deps))]
