"""Read a user's JSON file strictly: a key given twice in one object is an error naming the file and line.

``json.load`` keeps the last of two equal keys without a word, so a hand-edited manifest, HF
``config.json`` or prompt file could silently mean something else than it says. Used wherever the project
reads a JSON file a person may have written or edited::

    data = read_json_strict("out/data/pairs.preprocess.manifest.json")   # raises StrictJSONError
    record = loads_strict(line, "prompts.jsonl", first_line=3)   # line 3 of a JSONL file
"""
from __future__ import annotations

import json
import json.decoder
import json.scanner
import re
from pathlib import Path
from typing import Any


class StrictJSONError(ValueError):
    """Malformed JSON or a duplicate key; the message starts with ``FILE:LINE:``."""


class _StrictDecoder(json.JSONDecoder):
    """The pure-Python scanner with an object parser that remembers where each object starts and ends."""

    def __init__(self, where: str, first_line: int) -> None:
        super().__init__()
        self.where = where
        self.first_line = first_line
        self.spans: list[tuple[int, int]] = []  # every object parsed so far (children before parents)
        self.parse_object = self._parse_object
        self.scan_once = json.scanner.py_make_scanner(self)

    def _parse_object(self, s_and_end: tuple[str, int], strict: bool, scan_once: Any, object_hook: Any,
                      object_pairs_hook: Any, memo: dict | None = None) -> tuple[dict, int]:
        s, start = s_and_end
        pairs, end = json.decoder.JSONObject(s_and_end, strict, scan_once, None, lambda p: p, memo)
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                line = _duplicate_line(s, start, end, key, self.spans) + self.first_line - 1
                raise StrictJSONError(f"{self.where}:{line}: key {key!r} appears twice in one object"
                                      " (JSON keeps only the last); remove one of them")
            seen.add(key)
        self.spans.append((start, end))
        return dict(pairs), end


def _duplicate_line(text: str, start: int, end: int, key: str, spans: list[tuple[int, int]]) -> int:
    """Line of the second ``"key":`` of the object ``text[start:end]`` (not inside a nested object)."""
    children = [(a, b) for a, b in spans if start < a and b <= end]
    found = 0
    for match in re.finditer(re.escape(json.dumps(key)) + r"\s*:", text[start:end]):
        at = start + match.start()
        if any(a <= at < b for a, b in children):
            continue
        found += 1
        if found == 2:
            return text.count("\n", 0, at) + 1
    return text.count("\n", 0, start) + 1  # the key was written with other escapes: the object's first line


def loads_strict(text: str, where: str, first_line: int = 1) -> Any:
    """Parse ``text``, which starts at line ``first_line`` of the file ``where`` (both named in errors)."""
    decoder = _StrictDecoder(where, first_line)
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"{where}:{exc.lineno + first_line - 1}: not valid JSON ({exc.msg})") from exc


def read_json_strict(path: str | Path) -> Any:
    """Parse the JSON file at ``path``; :class:`StrictJSONError` names the file and line of a problem."""
    return loads_strict(Path(path).read_text(encoding="utf-8"), str(path))
