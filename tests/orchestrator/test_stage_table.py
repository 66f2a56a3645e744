"""The stage table: every stage kind a pipeline file may name has exactly one handler."""

from services.orchestrator.config import STAGE_CAPABILITY, STAGE_ORDER, StageConfig
from services.orchestrator.handlers import HANDLERS


def test_every_stage_kind_the_config_accepts_has_a_handler() -> None:
    # A kind added to config.py without a handler (or the reverse) would only fail when a
    # request reached it; the table and the validator must name the same kinds.
    assert list(HANDLERS) == list(STAGE_ORDER)
    assert set(STAGE_CAPABILITY) == set(HANDLERS)
    accepted = StageConfig.model_fields["stage"].annotation
    assert accepted is not None and set(accepted.__args__) == set(HANDLERS)
