"""moby's readings of what `docker ps` and the Engine API's paths carry: Go's Atoi for
``exited``, moby's version comparison, an image's familiar name."""

from __future__ import annotations

import pytest

from engine.dockerapi.images import familiar_name
from engine.dockerapi.versions import parse_version
from engine.errors import InvalidParameter
from statecharts.container.listing import ListFilter


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("x", "invalid syntax"),
        ("", "invalid syntax"),
        ("1.5", "invalid syntax"),
        ("٣", "invalid syntax"),
        ("9223372036854775808", "value out of range"),
        ("-9223372036854775809", "value out of range"),
        ("9" * 5000, "value out of range"),
    ],
)
def test_exited_is_read_as_gos_atoi(code: str, why: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        ListFilter.of({"exited": [code]})
    assert caught.value.message == (
        f"invalid filter 'exited={code}': strconv.Atoi: parsing \"{code}\": {why}"
    )


@pytest.mark.parametrize(
    "code", ["0", "+3", "-1", "00000000000000000000001", "9223372036854775807"]
)
def test_exited_takes_what_atoi_takes(code: str) -> None:
    ListFilter.of({"exited": [code]})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.51.0", "1.51"),
        ("1.24.0.0", "1.24"),
        ("01.051", "1.51"),
        ("99999999999999999999", "0"),  # past 64 bits: Go's Atoi fails, the part is 0
        ("1.", "1"),
        ("1..0", "1"),
    ],
)
def test_versions_compare_as_mobys(a: str, b: str) -> None:
    assert parse_version(a) == parse_version(b)


def test_a_longer_version_is_newer_only_by_a_part_that_is_not_zero() -> None:
    assert parse_version("1.51.1") > parse_version("1.51") > parse_version("1.9")
    assert parse_version("9223372036854775807") > parse_version("1.51")


@pytest.mark.parametrize(
    ("name", "familiar"),
    [
        ("alpine", "alpine"),
        ("alpine:3.20", "alpine"),
        ("docker.io/library/alpine:latest", "alpine"),
        ("index.docker.io/team/app", "team/app"),
        ("localhost:5000/team/app:1", "localhost:5000/team/app"),
        ("alpine@sha256:" + "a" * 64, "alpine"),
        ("FooBar", "FooBar"),  # no reference: kept as it is
    ],
)
def test_familiar_name_is_mobys_strip_tag(name: str, familiar: str) -> None:
    assert familiar_name(name) == familiar
