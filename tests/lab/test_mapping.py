"""The expert mapping covers every event kind, with a valid class, and refuses unknowns."""

import pytest

from tripwire.lab.mapping import CLASSES, EXPERT_CLASS, NO_EVENT, expert_class
from tripwire.llm.schemas import Classification
from tripwire.model import EventKind


def test_every_event_kind_has_an_expert_class():
    for kind in EventKind:
        assert expert_class(kind) in CLASSES, kind
    assert set(EXPERT_CLASS) == {k.value for k in EventKind} | {NO_EVENT}


def test_classes_are_the_verdict_classes():
    assert set(CLASSES) == {c.value for c in Classification}


def test_no_event_is_ignore_and_unknown_kinds_are_refused():
    assert expert_class(None) == "IGNORE"
    with pytest.raises(ValueError, match="meteor"):
        expert_class("meteor")
