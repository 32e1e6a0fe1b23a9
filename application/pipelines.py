"""Use cases of the Pipeline aggregate."""

from __future__ import annotations

from dataclasses import dataclass

from application.unit_of_work import Outcome, UnitOfWork
from domain.pipeline import Pipeline


@dataclass(frozen=True, kw_only=True)
class DefinePipeline:
    name: str
    stages: tuple[str, ...]


def define_pipeline(uow: UnitOfWork, cmd: DefinePipeline) -> Outcome:
    """Define a pipeline, or redefine the stages of the pipeline with that name."""
    pipeline = uow.find_pipeline(cmd.name)
    if pipeline is None:
        return Outcome(uow.add(Pipeline.define(name=cmd.name, stages=cmd.stages)))
    pipeline.redefine(cmd.stages)
    return Outcome(pipeline)
