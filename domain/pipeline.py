"""The Pipeline aggregate: the ordered stages a deal moves through."""

from __future__ import annotations

from typing import Self
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import CrmAggregate
from domain.errors import InvalidValue, RuleViolation
from domain.values import check_slug, normalise_name

TERMINAL_STAGES = ("won", "lost")
DEFAULT_PIPELINE = "default"
DEFAULT_STAGES = ("attraction", "interest", "evaluation")
"""The customer-lifecycle method: attraction -> interest -> evaluation -> won | lost."""
MAX_STAGES = 20

_PIPELINE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:crm-core:pipeline")


def pipeline_id(name: str) -> UUID:
    """Pipelines are named; the name (case-insensitive) determines the id, so one name
    is one pipeline."""
    return uuid5(_PIPELINE_NAMESPACE, normalise_name(name).casefold())


def _check_stages(stages: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    checked = tuple(check_slug(stage, field="stages") for stage in stages)
    if not checked:
        raise InvalidValue("a pipeline needs at least one stage", field="stages")
    if len(checked) > MAX_STAGES:
        raise InvalidValue(f"a pipeline has at most {MAX_STAGES} stages", field="stages")
    if len(set(checked)) != len(checked):
        raise InvalidValue("stage names must be unique", field="stages")
    if reserved := set(checked) & set(TERMINAL_STAGES):
        raise InvalidValue(
            f"{', '.join(sorted(reserved))} are terminal outcomes, not stages", field="stages"
        )
    return checked


class Pipeline(CrmAggregate):
    """An ordered list of stages, plus the terminal outcomes ``won`` and ``lost``."""

    creation = "the pipeline was defined"

    class Event(CrmAggregate.Event):
        pass

    class PipelineDefined(Event, CrmAggregate.Created):
        name: str
        stages: tuple[str, ...]

    class PipelineRedefined(Event):
        stages: tuple[str, ...]
        previous_stages: tuple[str, ...]

        def apply(self, aggregate: Pipeline) -> None:
            aggregate.stages = self.stages

    def __init__(self, *, name: str, stages: tuple[str, ...]) -> None:
        self.name = name
        self.stages = tuple(stages)

    @classmethod
    def define(cls, *, name: str, stages: tuple[str, ...] | list[str]) -> Self:
        """A new pipeline. Rules: 1-20 unique stage slugs, none named won or lost."""
        clean_name = normalise_name(name)
        return cls._create(
            cls.PipelineDefined,
            id=pipeline_id(clean_name),
            name=clean_name,
            stages=_check_stages(stages),
        )

    def redefine(self, stages: tuple[str, ...] | list[str]) -> None:
        """Add or reorder stages. Rule: existing stages are never removed, so every deal
        stays in a stage its pipeline knows. The same stages again is a no-op."""
        checked = _check_stages(stages)
        if missing := [stage for stage in self.stages if stage not in checked]:
            raise RuleViolation(
                f"stages cannot be removed from a pipeline: {', '.join(missing)}",
                field="stages",
            )
        if checked != self.stages:
            self.trigger_event(self.PipelineRedefined, stages=checked, previous_stages=self.stages)

    def check_stage(self, stage: str) -> str:
        """Rule: a deal's stage must exist in its pipeline."""
        if stage not in self.stages:
            raise InvalidValue(
                f"stage {stage!r} is not in pipeline {self.name!r} ({', '.join(self.stages)})",
                field="stage",
            )
        return stage
