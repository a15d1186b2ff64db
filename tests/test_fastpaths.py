"""squall/_fastpaths.py and its C replacement (speedups/c/fastpaths.c).

Each case runs through both modules and must come out the same. In the
compiled run the installed C module is tested; in the pure run the C source
is compiled here (skipped without a C compiler).
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Generator
from contextvars import ContextVar, copy_context
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any

import pytest

import squall._fastpaths
from squall.httputil import HTTPHeaders
from tests import _cext
from tests._cext import outcome

c_module, py_module = _cext.twins(squall._fastpaths, "step", "fastpaths.c")

DONE = object()
var: ContextVar[str] = ContextVar("var", default="unset")


class Marker:
    """An awaitable that yields itself once, then returns ``value``."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        yield self
        return self.value


def test_the_compiled_module_is_c(c_module: ModuleType, py_module: ModuleType) -> None:
    assert isinstance(c_module.step, BuiltinFunctionType)
    assert isinstance(py_module.step, FunctionType)
    assert set(c_module.__all__) == set(py_module.__all__) == {"new_instance", "step"}


@pytest.fixture(params=["c", "py"])
def module(request: pytest.FixtureRequest, c_module: ModuleType, py_module: ModuleType) -> Any:
    return c_module if request.param == "c" else py_module


def test_a_coroutine_that_returns_gives_done_and_its_value_is_dropped(module: Any) -> None:
    ran = []

    async def coroutine() -> int:
        ran.append(True)
        return 42

    running = coroutine()
    assert module.step(copy_context(), running, DONE) is DONE
    assert ran == [True]
    assert inspect.getcoroutinestate(running) == inspect.CORO_CLOSED


def test_a_coroutine_that_yields_gives_what_it_yielded_and_resumes_after(module: Any) -> None:
    marker = Marker("resumed")
    seen = []

    async def coroutine() -> None:
        seen.append(await marker)

    running = coroutine()
    context = copy_context()
    assert module.step(context, running, DONE) is marker
    assert inspect.getcoroutinestate(running) == inspect.CORO_SUSPENDED
    assert module.step(context, running, DONE) is DONE
    assert seen == ["resumed"]


def test_what_the_step_raises_goes_to_the_caller_and_ends_the_coroutine(module: Any) -> None:
    async def coroutine() -> None:
        raise ValueError("refused")

    running = coroutine()
    with pytest.raises(ValueError, match="^refused$"):
        module.step(copy_context(), running, DONE)
    assert inspect.getcoroutinestate(running) == inspect.CORO_CLOSED


def test_a_stop_iteration_inside_is_a_runtime_error_not_a_return(module: Any) -> None:
    async def coroutine() -> None:
        raise StopIteration("inside")

    with pytest.raises(RuntimeError, match="coroutine raised StopIteration"):
        module.step(copy_context(), coroutine(), DONE)


def test_the_step_runs_in_the_context_given_and_leaves_the_callers_alone(module: Any) -> None:
    context = copy_context()
    context.run(var.set, "before")
    seen = []

    async def coroutine() -> None:
        seen.append(var.get())
        var.set("inside")
        await Marker()
        seen.append(var.get())

    running = coroutine()
    module.step(context, running, DONE)
    assert context[var] == "inside"
    assert var.get() == "unset"
    # Resumed elsewhere, it still sees what its context holds.
    assert module.step(context, running, DONE) is DONE
    assert seen == ["before", "inside"]
    assert var.get() == "unset"


def test_a_context_entered_already_is_refused_as_context_run_refuses_it(module: Any) -> None:
    context = copy_context()

    async def coroutine() -> None:
        return None

    running = coroutine()
    with pytest.raises(RuntimeError, match="cannot enter context"):
        context.run(module.step, context, running, DONE)
    assert inspect.getcoroutinestate(running) == inspect.CORO_CREATED
    running.close()


def test_a_generator_is_stepped_as_a_coroutine_is(module: Any) -> None:
    def generator() -> Generator[str, None, None]:
        yield "first"

    running = generator()
    assert module.step(copy_context(), running, DONE) == "first"
    assert module.step(copy_context(), running, DONE) is DONE


def test_something_not_a_context_is_refused_before_the_coroutine_starts(module: Any) -> None:
    async def coroutine() -> None:
        return None

    running = coroutine()
    with pytest.raises((TypeError, AttributeError)):
        module.step({}, running, DONE)
    assert inspect.getcoroutinestate(running) == inspect.CORO_CREATED
    running.close()


class Slotted:
    __slots__ = ("field",)
    inits = 0

    def __init__(self) -> None:
        type(self).inits += 1
        self.field = 1


class OwnNew:
    made = 0

    def __new__(cls) -> OwnNew:
        cls.made += 1
        return super().__new__(cls)


class Abstract(abc.ABC):
    @abc.abstractmethod
    def hook(self) -> None: ...


def test_new_instance_runs_no_init_and_sets_nothing(module: Any) -> None:
    made = module.new_instance(Slotted)
    assert type(made) is Slotted
    assert Slotted.inits == 0
    with pytest.raises(AttributeError):
        made.field  # noqa: B018
    headers = module.new_instance(HTTPHeaders)
    assert type(headers) is HTTPHeaders
    assert not hasattr(headers, "_as_list")


def test_new_instance_is_object_new_for_a_class_with_its_own_new(module: Any) -> None:
    made = module.new_instance(OwnNew)
    assert type(made) is OwnNew
    assert OwnNew.made == 0


@pytest.mark.parametrize("cls", [5, int, Abstract, type(None)], ids=repr)
def test_new_instance_refuses_what_object_new_refuses_with_its_message(
    c_module: ModuleType, py_module: ModuleType, cls: Any
) -> None:
    expected = outcome(object.__new__, cls)
    assert expected[0] == "raised"
    assert outcome(c_module.new_instance, cls) == expected
    assert outcome(py_module.new_instance, cls) == expected
