"""Every public test vector, every expected field, through the library and through the CLI."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest

from exporter.amiplus.explain import failure_as_json
from exporter.amiplus.reading import read_meter
from exporter.cli import main
from exporter.wmbus import MeterKey, WMBusError, decode

from .conftest import VECTORS, assert_matches

ERROR_KEYS = {"ok", "error", "message"}


def decode_to_json(frame_hex: str, key_text: str | None) -> dict[str, Any]:
    key = MeterKey.parse(key_text) if key_text is not None else None
    try:
        return read_meter(decode(bytes.fromhex(frame_hex), key)).as_json()
    except WMBusError as error:
        return failure_as_json(error)


def check(output: dict[str, Any], vector: dict[str, Any]) -> None:
    expect = vector["expect"]
    if "expect_error" in vector:
        assert output["ok"] is False
        assert output["error"] == vector["expect_error"]
        assert len(output["message"]) > 40
        assert set(output) - ERROR_KEYS == set(expect)
    else:
        assert output["ok"] is True, output
        assert set(output) - {"ok", "key_variant"} == set(expect)
        reversed_key = vector.get("key_hex") not in (None, vector.get("working_key_hex"))
        assert ("key_variant" in output) == reversed_key
        if reversed_key:
            assert output["key_variant"] == "byte-reversed"
    assert_matches(output, expect)


def test_library_decodes_vector(any_vector: dict[str, Any]) -> None:
    check(decode_to_json(any_vector["frame_hex"], any_vector.get("key_hex")), any_vector)


def test_cli_decodes_vector(any_vector: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    key = any_vector.get("key_hex")
    argv = ["decode", *(["--key", key] if key else []), any_vector["frame_hex"]]
    status = main(argv)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    output = json.loads(lines[0])
    check(output, any_vector)
    assert status == (1 if "expect_error" in any_vector else 0)


def _text_keys() -> list[dict[str, Any]]:
    def printable(hex_key: str) -> bool:
        text = bytes.fromhex(hex_key).decode("latin-1")
        return all(c in string.printable and c not in "\t\n\r\x0b\x0c" for c in text)

    return [v for v in VECTORS if "working_key_hex" in v and printable(v["working_key_hex"])]


@pytest.mark.parametrize("vector", _text_keys(), ids=lambda v: v["name"])
def test_key_given_as_its_16_character_text(vector: dict[str, Any]) -> None:
    text = bytes.fromhex(vector["working_key_hex"]).decode("ascii")
    check(decode_to_json(vector["frame_hex"], text), vector)


def test_vectors_cover_every_error_code_of_the_file() -> None:
    codes = {v["expect_error"] for v in VECTORS if "expect_error" in v}
    assert codes == {"crc", "truncated", "malformed", "no_key", "decryption_failed"}
    assert len(_text_keys()) >= 1


@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS if v["encrypted"] and "expect_error" not in v],
    ids=lambda v: v["name"],
)
def test_encrypted_vector_without_key_is_no_key(vector: dict[str, Any]) -> None:
    output = decode_to_json(vector["frame_hex"], None)
    assert output["error"] == "no_key"
    assert output["meter_id"] == vector["expect"]["meter_id"]
