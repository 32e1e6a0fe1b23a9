"""The Pipeline aggregate: ordered stages, plus the terminal outcomes won and lost."""

from __future__ import annotations

import pytest

from domain.errors import InvalidValue, RuleViolation
from domain.pipeline import DEFAULT_PIPELINE, DEFAULT_STAGES, Pipeline, pipeline_id

pytestmark = pytest.mark.usefixtures("attributed")

WINDOWS = ("lead", "measurement", "proposal")


def names(pipeline: Pipeline) -> list[str]:
    return [type(event).__name__ for event in pipeline.pending_events]


# ------------------------------------------------------------------------ define


def test_a_pipeline_is_defined_by_an_event_with_its_name_and_stages() -> None:
    pipeline = Pipeline.define(name="  Window   fitting ", stages=list(WINDOWS))

    assert names(pipeline) == ["PipelineDefined"]
    event = pipeline.pending_events[0]
    assert (event.name, event.stages) == ("Window fitting", WINDOWS)
    assert (pipeline.name, pipeline.stages) == ("Window fitting", WINDOWS)


def test_the_default_pipeline_follows_the_customer_lifecycle_method() -> None:
    assert DEFAULT_STAGES == ("attraction", "interest", "evaluation")

    pipeline = Pipeline.define(name=DEFAULT_PIPELINE, stages=DEFAULT_STAGES)

    assert pipeline.stages == DEFAULT_STAGES
    assert pipeline.id == pipeline_id(DEFAULT_PIPELINE)


def test_a_pipelines_id_is_derived_from_its_name_regardless_of_case_and_spacing() -> None:
    pipeline = Pipeline.define(name="Window Fitting", stages=WINDOWS)

    assert pipeline.id == pipeline_id("window fitting")
    assert pipeline.id == pipeline_id("  WINDOW   FITTING ")
    assert pipeline.id == Pipeline.define(name="window fitting", stages=("lead",)).id


def test_pipelines_with_different_names_have_different_ids() -> None:
    assert pipeline_id("sales") != pipeline_id("service")
    assert (
        Pipeline.define(name="sales", stages=WINDOWS).id
        != Pipeline.define(name="service", stages=WINDOWS).id
    )


def test_a_pipeline_needs_a_name() -> None:
    with pytest.raises(InvalidValue) as caught:
        Pipeline.define(name="   ", stages=WINDOWS)
    assert caught.value.field == "name"


def test_a_pipeline_needs_at_least_one_stage() -> None:
    assert Pipeline.define(name="one", stages=["only"]).stages == ("only",)
    with pytest.raises(InvalidValue, match="at least one stage") as caught:
        Pipeline.define(name="none", stages=[])
    assert caught.value.field == "stages"


def test_a_pipeline_has_at_most_20_stages() -> None:
    twenty = [f"stage_{n}" for n in range(20)]
    assert Pipeline.define(name="long", stages=twenty).stages == tuple(twenty)

    with pytest.raises(InvalidValue, match="at most 20") as caught:
        Pipeline.define(name="too long", stages=[*twenty, "stage_20"])
    assert caught.value.field == "stages"


def test_stage_names_are_unique() -> None:
    with pytest.raises(InvalidValue, match="unique") as caught:
        Pipeline.define(name="twice", stages=["lead", "proposal", "lead"])
    assert caught.value.field == "stages"


@pytest.mark.parametrize("reserved", ["won", "lost"])
def test_won_and_lost_are_terminal_outcomes_not_stages(reserved: str) -> None:
    with pytest.raises(InvalidValue, match=reserved) as caught:
        Pipeline.define(name="reserved", stages=["lead", reserved])
    assert caught.value.field == "stages"


@pytest.mark.parametrize("stage", ["Lead", "first-call", "2nd", "", "x" * 41])
def test_a_stage_name_must_be_a_slug(stage: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        Pipeline.define(name="bad", stages=["lead", stage])
    assert caught.value.field == "stages"


# ---------------------------------------------------------------------- redefine


def test_stages_can_be_added_and_the_change_is_recorded_with_the_previous_stages() -> None:
    pipeline = Pipeline.define(name="windows", stages=WINDOWS)
    extended = ("lead", "measurement", "survey", "proposal")

    pipeline.redefine(list(extended))

    assert names(pipeline) == ["PipelineDefined", "PipelineRedefined"]
    event = pipeline.pending_events[-1]
    assert (event.stages, event.previous_stages) == (extended, WINDOWS)
    assert pipeline.stages == extended


def test_stages_can_be_reordered() -> None:
    pipeline = Pipeline.define(name="windows", stages=WINDOWS)

    pipeline.redefine(("measurement", "lead", "proposal"))

    assert pipeline.stages == ("measurement", "lead", "proposal")
    assert names(pipeline)[-1] == "PipelineRedefined"


def test_a_stage_cannot_be_removed_from_a_pipeline() -> None:
    pipeline = Pipeline.define(name="windows", stages=WINDOWS)

    with pytest.raises(RuleViolation, match="measurement") as caught:
        pipeline.redefine(("lead", "proposal", "signed"))
    assert caught.value.field == "stages"
    assert pipeline.stages == WINDOWS
    assert names(pipeline) == ["PipelineDefined"]


def test_redefining_with_the_same_stages_records_nothing() -> None:
    pipeline = Pipeline.define(name="windows", stages=WINDOWS)

    pipeline.redefine(list(WINDOWS))

    assert names(pipeline) == ["PipelineDefined"]
    assert pipeline.version == 1


@pytest.mark.parametrize(
    "stages",
    [[*WINDOWS, "won"], [*WINDOWS, "lead"], [*WINDOWS, "Bad"], [f"s_{n}" for n in range(21)]],
)
def test_a_redefinition_follows_the_same_stage_rules_as_a_definition(stages: list[str]) -> None:
    pipeline = Pipeline.define(name="windows", stages=WINDOWS)

    with pytest.raises(InvalidValue) as caught:
        pipeline.redefine(stages)
    assert caught.value.field == "stages"
    assert pipeline.stages == WINDOWS


# ------------------------------------------------------------------- check_stage


def test_a_stage_of_the_pipeline_is_accepted() -> None:
    pipeline = Pipeline.define(name="windows", stages=WINDOWS)

    assert [pipeline.check_stage(stage) for stage in WINDOWS] == list(WINDOWS)


@pytest.mark.parametrize("stage", ["attraction", "won", "lost", "Lead", ""])
def test_a_stage_not_in_the_pipeline_is_refused(stage: str) -> None:
    pipeline = Pipeline.define(name="windows", stages=WINDOWS)

    with pytest.raises(InvalidValue, match="not in pipeline") as caught:
        pipeline.check_stage(stage)
    assert caught.value.field == "stage"


def test_an_added_stage_is_accepted_after_the_redefinition() -> None:
    pipeline = Pipeline.define(name="windows", stages=WINDOWS)
    with pytest.raises(InvalidValue):
        pipeline.check_stage("survey")

    pipeline.redefine([*WINDOWS, "survey"])

    assert pipeline.check_stage("survey") == "survey"
