"""The public surface: what ``import crmcore`` loads, what it exports, and what stays read-only.

The import checks run in a fresh interpreter (a subprocess): this test process has long since
imported numpy, the adapters and the services.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import crmcore
import crmcore.events
from crmcore import TRANSITIONS, LifecycleStage

SRC = Path(crmcore.__file__).resolve().parent.parent

HEAVY = ("numpy", "sqlalchemy", "crmcore.adapters", "crmcore.services")
EVENT_NAMES = (
    "CustomerErased",
    "CustomerRegistered",
    "CustomerUpdated",
    "CustomersMerged",
    "DomainEvent",
    "InteractionRecorded",
    "SegmentEntered",
    "SegmentExited",
    "StageChanged",
    "TransactionRecorded",
)


def loaded_after(statement: str) -> list[str]:
    """Every module loaded by ``statement`` in a fresh interpreter (this checkout's crmcore)."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    path = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    proc = subprocess.run(  # noqa: S603 - our interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    modules: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return modules


@pytest.mark.parametrize(
    "statement",
    [
        "import crmcore",
        "import crmcore.domain",
        "import crmcore.errors",
        "import crmcore.events",
        "from crmcore import Customer, CrmNumber, Money, ValidationError, TRANSITIONS",
    ],
)
def test_light_imports_load_no_numpy_adapter_or_services(statement: str) -> None:
    modules = loaded_after(statement)
    heavy = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []


def test_the_heavy_names_load_on_first_use() -> None:
    modules = loaded_after("import crmcore\ncrmcore.InMemoryStore\ncrmcore.Crm")
    assert {"numpy", "crmcore.adapters.memory", "crmcore.services"} <= set(modules)
    assert "sqlalchemy" not in modules


def test_every_exported_name_resolves_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in crmcore.__all__:
            assert getattr(crmcore, name) is not None, name
    assert set(crmcore.__all__) <= set(dir(crmcore))
    assert len(set(crmcore.__all__)) == len(crmcore.__all__)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec("from crmcore import *", namespace)  # noqa: S102 - a fixed statement
    assert set(namespace) - {"__builtins__"} == set(crmcore.__all__)


def test_host_facing_errors_are_exported() -> None:
    from crmcore.errors import EventDeliveryError

    assert crmcore.EventDeliveryError is EventDeliveryError
    assert "EventDeliveryError" in crmcore.__all__


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = crmcore.NoSuchThing


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_events_live_in_crmcore_events(name: str) -> None:
    import crmcore.domain

    assert name in crmcore.events.__all__
    assert getattr(crmcore.events, name) is getattr(crmcore.domain, name)
    assert name not in crmcore.__all__


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_top_level_event_names_are_deprecated(name: str) -> None:
    with pytest.deprecated_call(match=rf"crmcore\.{name} is deprecated.*crmcore\.events"):
        old = getattr(crmcore, name)
    assert old is getattr(crmcore.events, name)
    # Every access warns (the deprecated name is never cached in the module).
    with pytest.deprecated_call():
        getattr(crmcore, name)


def test_deprecated_from_import_warns() -> None:
    with pytest.deprecated_call(match="from crmcore.events import StageChanged"):
        from crmcore import StageChanged  # noqa: F401


def test_transition_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[LifecycleStage.LEAD] = frozenset()
    with pytest.raises(TypeError):
        del TRANSITIONS[LifecycleStage.LEAD]
    with pytest.raises(AttributeError):
        TRANSITIONS[LifecycleStage.LEAD].add(LifecycleStage.ACTIVE)
    assert all(isinstance(targets, frozenset) for targets in TRANSITIONS.values())
    assert set(TRANSITIONS) == set(LifecycleStage)
