"""The error taxonomy: categories, wrapping, lookup by category."""

from __future__ import annotations

import pytest

from engine import errors
from engine.errors import Category, ChartdError


@pytest.mark.parametrize("category", list(Category))
def test_every_category_has_exactly_one_class(category: Category) -> None:
    error = errors.error_for(category, "msg")
    assert isinstance(error, ChartdError)
    assert error.category is category
    assert error.message == str(error) == "msg"
    assert errors.error_for(category.value, "m").category is category


def test_the_classes_carry_moby_categories() -> None:
    assert errors.NotFound.category == "not_found"
    assert errors.InvalidParameter.category == "invalid_parameter"
    assert errors.Conflict.category == "conflict"
    assert errors.NotModified.category == "not_modified"
    assert errors.Forbidden.category == "forbidden"
    assert errors.Unavailable.category == "unavailable"
    assert errors.System.category == "system"


def test_wrap_adds_context_and_keeps_the_class() -> None:
    inner = errors.Conflict("container is paused and must be unpaused first")
    outer = inner.wrap('cannot remove container "/web"')
    assert type(outer) is errors.Conflict
    assert outer.message == (
        'cannot remove container "/web": container is paused and must be unpaused first'
    )
    assert outer.__cause__ is inner
    assert inner.message == "container is paused and must be unpaused first"


def test_chart_error_is_an_invalid_parameter_listing_problems() -> None:
    one = errors.ChartError([("transitions[3].to", "unknown state 'runing'")], source="c.yaml")
    assert isinstance(one, errors.InvalidParameter)
    assert one.message == "invalid chart c.yaml: transitions[3].to: unknown state 'runing'"
    two = errors.ChartError([("initial", "a"), ("", "b")])
    assert two.message.splitlines() == ["invalid chart: 2 problems", "  initial: a", "  b"]
    assert two.wrap("loading").problems == two.problems


def test_an_unknown_category_is_refused() -> None:
    with pytest.raises(ValueError, match="teapot"):
        errors.error_for("teapot", "x")
