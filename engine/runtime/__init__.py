"""The supervised actor runtime on trio: actors, mailboxes, registry, supervisors, timers."""

from ._actor import (
    Actor,
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    Envelope,
    Overloaded,
    ReplyCallback,
)
from ._gc import GcPolicy
from ._registry import ActorRef, Registry
from ._supervisor import ChildSpec, RestartType, Strategy, Supervisor, SupervisorEscalation
from ._timers import TimerFired, TimerService, TimerSource

__all__ = [
    "Actor",
    "ActorCrashed",
    "ActorRef",
    "ActorStopped",
    "AskTimeout",
    "ChildSpec",
    "Envelope",
    "GcPolicy",
    "Overloaded",
    "Registry",
    "ReplyCallback",
    "RestartType",
    "Strategy",
    "Supervisor",
    "SupervisorEscalation",
    "TimerFired",
    "TimerService",
    "TimerSource",
]
