"""What the stt service holds once its model has passed the self-check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.kit.deps import provide, provide_settings
from services.stt.service import Transcriber
from services.stt.settings import Settings


@dataclass(frozen=True)
class Deps:
    """The stt service's dependencies."""

    settings: Settings
    service: Transcriber


DepsDep = Annotated[Deps, Depends(provide(Deps))]
SettingsDep = Annotated[Settings, Depends(provide_settings(Settings))]
