"""guardrails.atomic_files: complete files or the old file, never a half-written one, and no temporaries left."""
import json
import os

import pytest

from guardrails.atomic_files import atomic_path, atomic_write, write_bytes_atomic, write_json_atomic, write_text_atomic


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def test_success_writes_exactly_the_content_and_creates_the_folder(tmp_path):
    target = tmp_path / "sub" / "data.bin"
    payload = bytes(range(256)) * 3
    assert write_bytes_atomic(target, payload) == target
    assert target.read_bytes() == payload
    text = tmp_path / "a.txt"
    write_text_atomic(text, "crlf stays\r\nünïcode\n")
    assert text.read_bytes() == "crlf stays\r\nünïcode\n".encode("utf-8")
    manifest = tmp_path / "m.json"
    write_json_atomic(manifest, {"b": [1, 2], "a": "é"}, indent=2, ensure_ascii=False)
    assert manifest.read_bytes() == b'{\n  "b": [\n    1,\n    2\n  ],\n  "a": "\xc3\xa9"\n}\n'
    with atomic_write(tmp_path / "t.txt", "w") as handle:
        handle.write("line\n")
    assert (tmp_path / "t.txt").read_bytes() == b"line\n"
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "sub") == []


def test_temporary_is_a_hidden_sibling_until_the_block_ends(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with atomic_write(target) as handle:
        handle.write(b"new")
        (tmp,) = _leftovers(tmp_path)
        assert tmp.startswith(f".out.json.tmp-{os.getpid()}-")
        assert target.read_text() == "old"
    assert target.read_text() == "new" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    target = tmp_path / "manifest.json"
    target.write_bytes(b"old content")
    with pytest.raises(error):
        with atomic_write(target) as handle:
            handle.write(b"half of the new cont")
            raise error()
    assert target.read_bytes() == b"old content"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_a_failing_name_based_writer_leaves_nothing_when_there_was_no_file(tmp_path, error):
    with pytest.raises(error):
        with atomic_path(tmp_path / "model.pt") as tmp:
            tmp.write_bytes(b"partial")
            raise error()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_renames_what_a_name_based_writer_wrote(tmp_path):
    target = tmp_path / "model.pt"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.exists() and tmp != target
        tmp.write_text(json.dumps({"k": 1}))
    assert json.loads(target.read_text()) == {"k": 1} and _leftovers(tmp_path) == []


def test_mode_other_than_write_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "ab"):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def disk_calls(monkeypatch):
    """Every ``os.fsync`` (with the file it synced and that file's size then) and ``os.replace``, in order."""
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        calls.append(("fsync", target, os.fstat(fd).st_size))
        return real_fsync(fd)

    def replace(src, dst, **kwargs):
        calls.append(("replace", os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return calls


@pytest.mark.parametrize("writer", ["bytes", "json", "path"])
def test_the_whole_content_is_fsynced_before_the_rename(tmp_path, disk_calls, writer):
    """A rename reaches the disk before the data it names unless the data is fsynced first: after a power cut
    the final name would hold an empty or partial file. The sync must cover the whole temporary, then rename it."""
    target = tmp_path / "out.bin"
    payload = b"x" * 100_000
    if writer == "bytes":
        write_bytes_atomic(target, payload)
    elif writer == "json":
        write_json_atomic(target, {"x": "x" * (100_000 - 10)})  # {"x": "..."} and a newline: 100000 bytes
    else:
        with atomic_path(target) as tmp:
            tmp.write_bytes(payload)
    size = target.stat().st_size
    assert size == 100_000
    renames = [c for c in disk_calls if c[0] == "replace" and c[2] == str(target)]
    assert len(renames) == 1, disk_calls
    temporary = renames[0][1]
    at = disk_calls.index(renames[0])
    synced = [c for c in disk_calls[:at] if c[0] == "fsync" and c[1] == temporary]
    assert synced and synced[-1][2] == size, disk_calls  # fsynced, complete, before the rename
