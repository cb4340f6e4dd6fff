"""guardrails.command_errors: user errors are one line with exit 2, Ctrl-C exit 130, bugs keep their traceback."""
from __future__ import annotations

import errno

import pytest

from guardrails.command_errors import run_command
from guardrails.output_paths import OutputRefused, check_output_prefix, claim_folder, note_complete, prefix_claim
from guardrails.output_records import OutputKind

THING = OutputKind("a thing", "tests.thing")


def _raising(exc):
    def main(argv=None):
        raise exc
    return main


@pytest.mark.parametrize("exc, expected", [
    (OSError(errno.EROFS, "Read-only file system", "/ro/.report.json.codeft.tmp-12-ab12cd34"),
     "cannot write /ro/report.json: read-only file system; choose an output on a writable disk"),
    (PermissionError(errno.EACCES, "Permission denied", "/x/out"), "/x/out: permission denied; fix its permissions"),
    (OSError(errno.ENOSPC, "No space left on device", "/d/.x.bin.codeft.tmp-5-00aa11bb"),
     "no space left on the device while writing /d/x.bin; free some space"),
    (OSError(errno.ENOSPC, "No space left on device", "/src/shard.pt", None, "/out/.rel.codeft.tmp-7-0a0b0c0d/a.pt"),
     "while writing /out/rel/a.pt; free"),  # a copy names what it writes, not the source
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/in/data.jsonl"),
     "/in/data.jsonl: no such file or folder; check the path"),
    (FileNotFoundError("/m/config.json: missing; is /m a model folder?"), "/m/config.json: missing; is /m a model"),
    (OutputRefused("/o: is not ours"), "/o: is not ours"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, exc, expected):
    assert run_command(_raising(exc)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("test_command_errors: error: ") and expected in err, err


@pytest.mark.parametrize("text", [
    "[enforce fail at inline_container.cc:672] . unexpected pos 768 vs 662",
    "PytorchStreamWriter failed writing file data/0: file write failed",
    "basic_ios::clear: iostream error",
])
def test_torch_reporting_a_full_disk_names_the_pending_output(tmp_path, capsys, text):
    claim_folder(tmp_path / "ckpt", THING)
    assert run_command(_raising(RuntimeError(text))) == 2
    err = capsys.readouterr().err
    assert f"no space left on the device while writing {tmp_path / 'ckpt'}" in err
    assert f"({tmp_path / 'ckpt'} is unchanged)" in err


def test_an_interrupt_says_what_each_output_holds(tmp_path, capsys):
    assert run_command(_raising(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == "test_command_errors: interrupted; no output was written\n"
    claim_folder(tmp_path / "a", THING)
    claim_folder(tmp_path / "b", THING)
    note_complete(tmp_path / "b")
    assert run_command(_raising(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == (f"test_command_errors: interrupted; {tmp_path / 'a'} is unchanged;"
                                       f" {tmp_path / 'b'} is complete\n")



def test_sigterm_is_handled_like_ctrl_c(tmp_path, capsys):
    import os
    import signal

    def main(argv=None):
        claim_folder(tmp_path / "a", THING)
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    previous = signal.getsignal(signal.SIGTERM)
    assert run_command(main) == 143
    assert capsys.readouterr().err == f"test_command_errors: terminated (SIGTERM); {tmp_path / 'a'} is unchanged\n"
    assert signal.getsignal(signal.SIGTERM) == previous  # put back for an in-process caller


def test_a_signal_in_a_deferred_block_acts_once_the_block_ends(capsys):
    import os
    import signal

    from guardrails.command_errors import signals_deferred

    reached = []

    def main(argv=None):
        with signals_deferred():  # as while a process pool forks its workers: an exception there would be lost
            os.kill(os.getpid(), signal.SIGTERM)
            reached.append("the block ran to its end")
        for _ in range(1000):  # the signal is delivered again, to the command's handler
            reached.append("after")
        raise AssertionError("SIGTERM was lost")

    assert run_command(main) == 143 and reached[0] == "the block ran to its end"
    assert capsys.readouterr().err == "test_command_errors: terminated (SIGTERM); no output was written\n"


def test_an_interrupt_after_the_datasets_of_a_prefix_are_in_place_says_complete(capsys, tmp_path):
    prefix = str(tmp_path / "data" / "pairs")
    check_output_prefix(prefix)
    assert run_command(_raising(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == f"test_command_errors: interrupted; {prefix}_* is unchanged\n"
    note_complete(prefix_claim(prefix))
    assert run_command(_raising(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == f"test_command_errors: interrupted; {prefix}_* is complete\n"


@pytest.mark.parametrize("bug", [TypeError("'int' object is not iterable"), IndexError("index out of range"),
                                 RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
                                 OSError(errno.EBADF, "Bad file descriptor")])
def test_bugs_keep_their_traceback(bug):
    with pytest.raises(type(bug)):
        run_command(_raising(bug))


def test_the_exit_status_of_main_passes_through():
    assert run_command(lambda argv: 0) == 0 and run_command(lambda argv: 1) == 1
    assert run_command(lambda argv: len(argv), ["a", "b"]) == 2
