"""What tts-bark holds once Bark has passed its self-check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.kit.deps import provide
from services.tts_bark.service import BarkSpeaker
from services.tts_bark.settings import Settings


@dataclass(frozen=True)
class Deps:
    """tts-bark's dependencies."""

    settings: Settings
    service: BarkSpeaker


DepsDep = Annotated[Deps, Depends(provide(Deps))]
