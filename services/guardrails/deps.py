"""What the guardrails service holds once its classifiers have passed the self-check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.guardrails.service import Guard
from services.guardrails.settings import Settings
from services.kit.deps import provide, provide_settings


@dataclass(frozen=True)
class Deps:
    """The guardrails service's dependencies."""

    settings: Settings
    service: Guard


DepsDep = Annotated[Deps, Depends(provide(Deps))]
SettingsDep = Annotated[Settings, Depends(provide_settings(Settings))]
