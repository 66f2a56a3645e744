"""What the audio-preprocessor holds once its engine has passed the self-check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.kit.deps import provide
from services.preprocessor.service import Denoiser
from services.preprocessor.settings import Settings


@dataclass(frozen=True)
class Deps:
    """The audio-preprocessor's dependencies."""

    settings: Settings
    service: Denoiser


DepsDep = Annotated[Deps, Depends(provide(Deps))]
