"""parse_record's orjson fast path gives exactly what the json module gives, and falls back where they differ."""
import json

import pytest

from dataset.formats.jsonl_records import RecordIssue, parse_record

KEYS = ("inputs", "targets")


def test_fast_path_equals_the_json_module_on_every_fixture_line(fork_dir):
    for name in ("sample.jsonl", "sample2.jsonl"):
        for number, line in enumerate((fork_dir / name).read_bytes().split(b"\n")[:-1]):
            expected = json.loads(line.decode("utf-8"))
            assert parse_record(line, KEYS, name, number) == (expected["inputs"], expected["targets"])


@pytest.mark.parametrize("line, expected", [
    (b'{"inputs": "a", "targets": "b", "score": NaN}', ("a", "b")),  # json accepts NaN, orjson does not
    (b'{"inputs": "a", "targets": "b", "n": 123456789012345678901234567890}', ("a", "b")),  # > 64-bit int
    (b'{"inputs": "x", "inputs": "a", "targets": "b"}', ("a", "b")),  # duplicate key: the last wins, as json
    (b'{"inputs": "a\\u2028b", "targets": "\\ud83d\\ude80"}', ("a\u2028b", "\U0001F680")),  # escapes, pairs
])
def test_lines_orjson_rejects_or_treats_specially_follow_the_json_module(line, expected):
    assert parse_record(line, KEYS, "f.jsonl", 0) == expected


def test_errors_still_come_from_the_json_module():
    issue = parse_record(b'{"inputs": "a", "targets": }', KEYS, "f.jsonl", 7)
    assert isinstance(issue, RecordIssue) and issue.reason == "invalid_json" and "column" in issue.detail
    issue = parse_record(b'{"inputs": "\xff", "targets": "b"}', KEYS, "f.jsonl", 7)
    assert isinstance(issue, RecordIssue) and issue.reason == "invalid_utf8"
    issue = parse_record(b'{"inputs": "\\ud800", "targets": "b"}', KEYS, "f.jsonl", 7)
    assert isinstance(issue, RecordIssue) and issue.reason == "invalid_unicode"


def test_an_empty_field_name_is_not_mistaken_for_an_alias():
    issue = parse_record(b'{"": "x", "targets": "b"}', KEYS, "f.jsonl", 3)
    assert isinstance(issue, RecordIssue) and (issue.reason, issue.key) == ("missing_key", "inputs")
    assert parse_record(b'{"": "x", "inputs": "a", "outputs": "b"}', KEYS, "f.jsonl", 3) == ("a", "b")
