"""What the llm service holds once its model has passed the self-check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.kit.deps import provide
from services.llm.service import GenerationRunner
from services.llm.settings import Settings


@dataclass(frozen=True)
class Deps:
    """The llm service's dependencies."""

    settings: Settings
    service: GenerationRunner
    created: int  # when the model was loaded (Unix seconds), as its model card reports


DepsDep = Annotated[Deps, Depends(provide(Deps))]
