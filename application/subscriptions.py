"""Use cases of the Subscription aggregate: one command, one handler each."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from application.unit_of_work import Outcome, UnitOfWork
from domain.subscription import Subscription


@dataclass(frozen=True, kw_only=True)
class CreateSubscription:
    subscription_id: UUID
    url: str
    event_types: tuple[str, ...]
    secret_fingerprint: str
    description: str = ""
    include_personal: bool = False


@dataclass(frozen=True, kw_only=True)
class SubscriptionCommand:
    subscription_id: UUID


@dataclass(frozen=True, kw_only=True)
class PauseSubscription(SubscriptionCommand):
    pass


@dataclass(frozen=True, kw_only=True)
class ResumeSubscription(SubscriptionCommand):
    pass


@dataclass(frozen=True, kw_only=True)
class MarkSubscriptionFailing(SubscriptionCommand):
    failures: int
    last_error: str


@dataclass(frozen=True, kw_only=True)
class ReplaySubscription(SubscriptionCommand):
    from_position: int


@dataclass(frozen=True, kw_only=True)
class RemoveSubscription(SubscriptionCommand):
    pass


def create_subscription(uow: UnitOfWork, cmd: CreateSubscription) -> Outcome:
    return Outcome(
        uow.add(
            Subscription.create(
                subscription_id=cmd.subscription_id,
                url=cmd.url,
                event_types=cmd.event_types,
                description=cmd.description,
                include_personal=cmd.include_personal,
                secret_fingerprint=cmd.secret_fingerprint,
            )
        )
    )


def pause_subscription(uow: UnitOfWork, cmd: PauseSubscription) -> Outcome:
    subscription = uow.subscription(cmd.subscription_id)
    subscription.pause()
    return Outcome(subscription)


def resume_subscription(uow: UnitOfWork, cmd: ResumeSubscription) -> Outcome:
    subscription = uow.subscription(cmd.subscription_id)
    subscription.resume()
    return Outcome(subscription)


def mark_subscription_failing(uow: UnitOfWork, cmd: MarkSubscriptionFailing) -> Outcome:
    subscription = uow.subscription(cmd.subscription_id)
    subscription.mark_failing(failures=cmd.failures, last_error=cmd.last_error)
    return Outcome(subscription)


def replay_subscription(uow: UnitOfWork, cmd: ReplaySubscription) -> Outcome:
    subscription = uow.subscription(cmd.subscription_id)
    subscription.replay(from_position=cmd.from_position)
    return Outcome(subscription)


def remove_subscription(uow: UnitOfWork, cmd: RemoveSubscription) -> Outcome:
    """The subscription's data key, from which its signing secret is derived, is
    destroyed in the same transaction (``CrmApplication``)."""
    subscription = uow.subscription(cmd.subscription_id)
    subscription.remove()
    return Outcome(subscription)
