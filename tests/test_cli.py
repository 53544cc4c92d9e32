"""The `decode` command as a user runs it: a real subprocess, real stdin and stdout."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import vector

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "exporter" / "examples" / "telegrams.txt"
B2 = vector("B2")
B2_KEY = B2["key_hex"]
CONSOLE_SCRIPT = Path(sys.executable).parent / "amiplus-exporter"


def run(*args: str, stdin: str = "") -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


@pytest.mark.integration
def test_readme_example_decodes_every_line_format() -> None:
    status, results, _ = run("decode", "--key", B2_KEY, stdin=EXAMPLES.read_text())
    assert status == 0
    assert len(results) == 4  # hex, rtl_wmbus, telegram=|..| with CRCs, rtl_433 JSON
    for result in results:
        assert result["ok"] is True
        assert result["meter_id"] == "30584551"
        assert result["energy_imported_kwh"] == 15948.218
        assert result["voltage_v"] == {"L1": 236.0, "L2": 235.0, "L3": 238.0}
        assert result["meter_time"] == "2026-07-28T00:40:16+02:00"
    assert results[1]["access_number"] == 231


def test_readme_documents_the_example_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"amiplus-exporter decode --key {B2_KEY}" in readme
    assert "make run" in readme
    assert "make test" in readme


@pytest.mark.integration
def test_wrong_key_explains_what_to_check_without_revealing_the_key() -> None:
    wrong = vector("B5")["key_hex"]
    status, (result,), _ = run("decode", "--key", wrong, B2["frame_hex"])
    assert status == 1
    assert result["ok"] is False
    assert result["error"] == "decryption_failed"
    assert result["meter_id"] == "30584551"
    message = result["message"]
    assert "as given, byte-reversed" in message  # which candidates were tried
    assert "eLicznik" in message and "Klucz szyfrujący" in message  # where the key is shown
    assert "Re-activating HAN issues a new key" in message
    assert wrong not in message and wrong.lower() not in message


@pytest.mark.integration
def test_byte_reversed_key_decodes_and_says_so() -> None:
    reversed_key = bytes.fromhex(B2_KEY)[::-1].hex()
    status, (result,), _ = run("decode", "--key", reversed_key, B2["frame_hex"])
    assert status == 0
    assert result["ok"] is True
    assert result["key_variant"] == "byte-reversed"
    assert result["energy_exported_kwh"] == 0.023


@pytest.mark.integration
def test_garbage_lines_each_get_an_explained_failure() -> None:
    lines = [
        "hello meter",
        "4E44",  # too short
        "ABC",  # odd number of digits
        "T1;0;0;2024-05-14 12:36:09.123;97;148;33225544;0x1844ae4c",
        '{"model":"Acurite-Tower","id":1}',
        "{not json",
        "",  # blank lines are skipped
        "# a comment",
        B2["frame_hex"],
    ]
    status, results, _ = run("decode", "--key", B2_KEY, stdin="\n".join(lines) + "\n")
    assert status == 1
    assert [r["ok"] for r in results] == [False] * 6 + [True]
    assert [r["error"] for r in results[:6]] == [
        "malformed",
        "truncated",
        "malformed",
        "crc",
        "malformed",
        "malformed",
    ]
    assert all(len(r["message"]) > 30 for r in results[:6])


@pytest.mark.integration
def test_telegram_from_another_meter_names_both_meters() -> None:
    status, (result,), _ = run("decode", "--key", B2_KEY, "--id", "11111111", B2["frame_hex"])
    assert status == 1
    assert result["error"] == "no_key"
    assert "30584551" in result["message"] and "11111111" in result["message"]


@pytest.mark.integration
def test_id_matches_in_either_byte_order() -> None:
    status, (result,), _ = run("decode", "--key", B2_KEY, "--id", "51455830", B2["frame_hex"])
    assert status == 0 and result["ok"] is True


@pytest.mark.integration
def test_qr_text_in_any_field_order() -> None:
    for qr in (
        f"30584551;{B2_KEY};30584551",
        f"{B2_KEY};30584551",
        f" klucz={B2_KEY} ; adres=30584551 ",
    ):
        status, (result,), _ = run("decode", "--qr", qr, B2["frame_hex"])
        assert (status, result["ok"]) == (0, True), qr


@pytest.mark.integration
def test_usage_errors_exit_2_with_a_message_and_no_secret() -> None:
    bad_key = "0123456789ABCDEF0123456789ABCDE"  # 31 digits
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "decode", "--key", bad_key, B2["frame_hex"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "32 hexadecimal digits" in done.stderr
    assert bad_key not in done.stderr
    assert done.stdout == ""
    status, _, stderr = run("decode", "--key", B2_KEY, "--qr", f"{B2_KEY};30584551")
    assert status == 2 and "either --key or --qr" in stderr
    status, _, stderr = run("decode", "--frobnicate")
    assert status == 2 and "unrecognized arguments" in stderr


@pytest.mark.integration
def test_many_telegrams_as_arguments() -> None:
    frames = [v["frame_hex"] for v in (vector("A1"), vector("A2"), vector("C1"))]
    status, results, _ = run("decode", *frames)
    assert status == 1
    assert [r.get("meter_id") for r in results] == ["10101010", "00254358", "00047442"]
    assert [r["ok"] for r in results] == [True, True, False]


@pytest.mark.integration
def test_python_module_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "decode", vector("A1")["frame_hex"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout)["energy_imported_kwh"] == 15694.05


@pytest.mark.integration
def test_large_input_is_decoded_in_parallel_in_input_order() -> None:
    from exporter.commands.decode import PARALLEL_MIN_LINES, KeyRing, render
    from exporter.wmbus import MeterKey

    examples = [line for line in EXAMPLES.read_text().splitlines() if not line.startswith("#")]
    cycle = [*examples, "garbage", vector("C1")["frame_hex"], vector("A7")["frame_hex"]]
    lines = [cycle[n % len(cycle)] for n in range(3 * PARALLEL_MIN_LINES)]
    lines[4321] = vector("E2-from-A4")["frame_hex"]
    status, results, _ = run("decode", "--key", B2_KEY, stdin="\n".join(lines) + "\n")
    expected, failed = render(lines, KeyRing(MeterKey.parse(B2_KEY), frozenset()))
    assert failed and status == 1
    assert results == [json.loads(line) for line in expected.splitlines()]
    assert len(results) == len(lines)
    assert results[4321]["error"] == "malformed"


@pytest.mark.integration
def test_a_live_pipe_gets_each_answer_before_the_next_line() -> None:
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "decode", "--key", B2_KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        for _ in range(3):
            process.stdin.write(B2["frame_hex"] + "\n")
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], 20)
            assert ready, "no answer within 20 s: the output is held back"
            answer = json.loads(process.stdout.readline())
            assert answer["energy_imported_kwh"] == 15948.218
    finally:
        process.stdin.close()
        assert process.wait(timeout=30) == 0
