"""A create request read as moby reads it: the body's decoding, its keys, the version's
rules, the name's check, the entrypoint's reset, names made for unnamed containers."""

from __future__ import annotations

import re

import pytest

from engine.api.status_text import ps_command
from engine.dockerapi.shapes import create_body, create_options
from engine.errors import InvalidParameter
from statecharts.container import moby
from statecharts.container.creation import GENERATED_TRIES, generated_name, initial_data


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "invalid JSON: got EOF while reading request body"),
        (b" \n", "invalid JSON: got EOF while reading request body"),
        (b"{}", "config cannot be empty in order to create a container"),
        (b"null", "config cannot be empty in order to create a container"),
        (b'{"HostConfig": {"AutoRemove": true}}', "config cannot be empty in order to create"),
        (b'{"Unknown": 1}', "config cannot be empty in order to create a container"),
    ],
)
def test_an_empty_body_or_config_is_refused_with_mobys_message(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidParameter, match=re.escape(message)):
        create_body(raw)


def test_keys_match_as_gos_decoder_matches_them() -> None:
    body = create_body(
        b'{"image": "alpine", "CMD": ["true"], "hostconfig": {"autoremove": true,'
        b' "restartpolicy": {"name": "no"}}, "Extra": 1, "cmd": ["echo", "later"]}'
    )
    assert sorted(body) == ["Cmd", "HostConfig", "Image"]
    assert body["Cmd"] == ["echo", "later"]  # the later key wins
    options = create_options(None, body)
    assert (options["image"], options["cmd"], options["auto_remove"]) == (
        "alpine",
        ["echo", "later"],
        True,
    )
    # The long s and the Kelvin sign fold to ASCII letters in Go; other letters do not.
    assert create_body(b'{"Label\\u017f": {"a": "b"}, "Cmd": ["x"]}')["Labels"] == {"a": "b"}
    assert create_body(b'{"wor\\u212aingdir": "/k", "Cmd": ["x"]}')["WorkingDir"] == "/k"
    assert "Labels" not in create_body(b'{"Label\\u015b": {}, "Cmd": ["x"]}')


def test_a_restart_policy_name_with_a_colon_is_an_unknown_policy() -> None:
    body = {"Cmd": ["true"], "HostConfig": {"RestartPolicy": {"Name": "on-failure:3"}}}
    with pytest.raises(InvalidParameter, match="unknown policy 'on-failure:3'; use one of"):
        create_options(None, body)
    body["HostConfig"] = {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}
    assert create_options(None, body)["restart"] == "on-failure:3"


def test_what_an_older_api_version_did_not_have_is_dropped() -> None:
    body = {
        "Cmd": ["true"],
        "Tty": True,
        "Healthcheck": {"Test": ["CMD", "true"], "StartInterval": 2_000_000_000},
        "HostConfig": {"AutoRemove": True, "ConsoleSize": [24, 80]},
    }
    latest = create_options(None, body)
    assert (latest["auto_remove"], latest["console_size"]) == (True, [24, 80])
    assert latest["healthcheck"]["start_interval"] == 2.0
    old = create_options(None, body, (1, 24))
    assert (old["auto_remove"], old["console_size"], old["healthcheck"]) == (
        False,
        None,
        {"test": ["CMD", "true"]},
    )
    assert create_options(None, body, (1, 43))["auto_remove"] is True


@pytest.mark.parametrize("name", ["ab\n", "a\x00b", "a\tb", "a/b", "..", "a", "-ab", "é1", "/"])
def test_a_bad_name_is_refused_with_mobys_message_as_given(name: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        moby.valid_name(name)
    assert refused.value.message == (
        f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    )


def test_an_empty_entrypoint_is_reset_as_moby_resets_it() -> None:
    data = initial_data(["echo", "hi"], {"entrypoint": [""]})
    assert (data["cmd"], data["entrypoint"]) == (["echo", "hi"], [])
    with pytest.raises(InvalidParameter, match="No command specified"):
        initial_data([], {"entrypoint": [""]})


def test_generated_names_fall_back_to_a_short_random_id() -> None:
    assert re.fullmatch(r"/[a-z]+_[a-z]+", generated_name())
    assert re.fullmatch(r"/[0-9a-f]{12}", generated_name(GENERATED_TRIES))
    moby.valid_name(generated_name(GENERATED_TRIES))


def test_a_listings_command_quotes_an_argument_with_a_space() -> None:
    assert ps_command(["sh", "-c", "exit 3", "a\tb", "x"]) == "sh -c 'exit 3' a\tb x"
    assert ps_command(["/bin/my app"]) == "/bin/my app"  # the path as it is
    assert ps_command([]) == ""
