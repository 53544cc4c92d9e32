"""Entries of a state file that the configuration no longer names: set aside beside it, taken
back, forgotten after a while with one line saying how many (plumbing's `SetAside`)."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import pytest

from exporter.plumbing import SetAside


class Disk:
    """A writer for `SetAside` that can be told to refuse, and counts what it wrote."""

    def __init__(self) -> None:
        self.refuse = False
        self.writes = 0

    def write(self, path: Path, data: bytes) -> None:
        if self.refuse:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.writes += 1
        path.write_bytes(data)


def test_entries_set_aside_come_back_until_dropped(tmp_path: Path) -> None:
    disk = Disk()
    aside = SetAside(tmp_path / "x.unconfigured.jsonl", 100.0, "things", disk.write, lambda: 5.0)
    assert aside.put({"a": {"n": 1}, "b": [1, 2]})
    lines = [
        json.loads(line) for line in (tmp_path / "x.unconfigured.jsonl").read_text().splitlines()
    ]
    assert lines == [
        {"key": "a", "since": 5.0, "entry": {"n": 1}},
        {"key": "b", "since": 5.0, "entry": [1, 2]},
    ]
    assert aside.take(["a", "c"]) == {"a": {"n": 1}}
    assert aside.take(["a"]) == {"a": {"n": 1}}  # taking leaves it there until it is dropped
    aside.drop(["a"])
    assert aside.take(["a", "b"]) == {"b": [1, 2]}
    aside.drop(["b"])
    assert not (tmp_path / "x.unconfigured.jsonl").exists()  # nothing aside: no file
    writes = disk.writes
    aside.drop(["b"])  # nothing to drop: nothing written
    assert disk.writes == writes


def test_entries_are_forgotten_after_keep_for_with_one_line_saying_how_many(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    day = 86400.0
    now = [0.0]
    disk = Disk()
    path = tmp_path / "x.jsonl"
    aside = SetAside(path, 2 * day, "the things no longer wanted", disk.write, lambda: now[0])
    aside.put({"a": 1, "b": 2})
    now[0] = day
    aside.put({"c": 3})
    now[0] = 2 * day - 1
    writes = disk.writes
    aside.expire()  # none is due yet
    assert disk.writes == writes and aside.take(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
    now[0] = 2 * day + 1
    with caplog.at_level(logging.INFO):
        aside.expire()
        assert aside.take(["a", "b", "c"]) == {"c": 3}
        now[0] = 3 * day + 1
        aside.expire()
    said = [r.getMessage() for r in caplog.records if "forgot" in r.getMessage()]
    assert said == [
        "x.jsonl: forgot 2 of the things no longer wanted (set aside more than 2 days ago)",
        "x.jsonl: forgot 1 of the things no longer wanted (set aside more than 2 days ago)",
    ]
    assert not path.exists()


def test_a_refused_write_is_said_once_and_the_owner_keeps_its_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk = Disk()
    aside = SetAside(tmp_path / "x.jsonl", 100.0, "things", disk.write, lambda: 0.0)
    disk.refuse = True
    assert not aside.put({"a": 1})
    assert not aside.put({"a": 1})
    refused = [r for r in caplog.records if "cannot keep the entries of things" in r.getMessage()]
    assert len(refused) == 1 and "No space left" in refused[0].getMessage()
    disk.refuse = False
    assert aside.put({"a": 1}) and aside.take(["a"]) == {"a": 1}


def test_damaged_lines_are_skipped_and_the_rest_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    aside = SetAside(path, 100.0, "things", Disk().write, lambda: 0.0)
    aside.put({"a": 1})
    path.write_bytes(
        path.read_bytes() + b'\x00\x00\x00\n{"key": 7}\n' + b'{"key":"b","since":0.0,"entry":2}'
    )
    assert aside.take(["a", "b"]) == {"a": 1, "b": 2}
    aside.put({"c": 3})
    assert aside.take(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
    assert b"\x00" not in path.read_bytes()


def test_an_entry_set_aside_again_after_it_expired_is_kept_from_then(tmp_path: Path) -> None:
    now = [0.0]
    aside = SetAside(tmp_path / "x.jsonl", 10.0, "things", Disk().write, lambda: now[0])
    aside.put({"a": 1, "b": 2})
    now[0] = 11.0
    aside.put({"a": 3})  # "b" is forgotten on the way; "a" counts from now
    assert aside.take(["a", "b"]) == {"a": 3}
    now[0] = 20.0
    aside.expire()
    assert aside.take(["a"]) == {"a": 3}


def test_exchange_sets_aside_takes_back_and_hands_refused_entries_back(tmp_path: Path) -> None:
    disk = Disk()
    aside = SetAside(tmp_path / "x.jsonl", 10.0, "things", disk.write, lambda: 0.0)
    aside.put({"back": 1})
    assert aside.exchange({"leaving": 2}, ["back", "new"], 20.0) == ({"back": 1}, {})
    assert aside.keep_for == 20.0
    assert aside.take(["back", "leaving"]) == {"back": 1, "leaving": 2}  # until dropped
    disk.refuse = True
    assert aside.exchange({"other": 3}, [], 20.0) == ({}, {"other": 3})
