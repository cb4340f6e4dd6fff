"""The sandbox's trusted first stage: run a Python program in a subinterpreter and prove it finished, or run phases.

Not imported by the project: ``evaluation.sandbox`` runs this file's text as ``python -I -S -B -c SOURCE`` inside
bubblewrap (the project folder is never visible there). On stdin: the nonce (hex, one line), the header's
length (one line), the header (``marshal``, which needs no import, unlike ``json``: ``mode``, ``rlimits`` and
the mode's fields), then the program, to the end of stdin: the driver gets everything ready before it reads the
program, so the parent may start sandboxes ahead and send each its program later. It sets the resource limits
and the program's stdin to ``/dev/null``, then writes record lines, each ``NONCE ...`` on a line of its own,
and leaves at once (``os._exit``).

``python`` (``hook``: ``sandbox_audit_hook.py`` compiled by this interpreter and marshalled, ``trusted``: its read-only
library folders): create a subinterpreter, install the audit hook in this interpreter and in the subinterpreter, run
the program there; record ``passed`` only when its module code ran to its end (``run_string`` returned without an
exception), else ``failed REASON`` (the uncaught exception's ``<class 'T'>: message``, or a fixed text when what
came back is not the plain string C made). The nonce is a local of this function, in the main interpreter: the
program's frames do not chain to it, its ``gc`` sees only its own objects, signal handlers (which receive the
current frame) can only be installed by the main interpreter, which runs nothing but this driver, and the hook
refuses the few calls that do cross interpreters (``sys._current_frames``) and every way to read raw memory.
CPython 3.11 shares class objects between interpreters, so the program can reach and change this interpreter's
modules: everything called after the program ran is bound to a local before it starts (builtin functions cannot
be changed), and the hook guards this interpreter too.

``phases`` (``phases``: ``{"name", "argv", "timeout_s"}`` each): run them in order in the working folder with
the sandbox's stdout and stderr, each under its own wall-clock limit; after each one, kill every process it left
(``kill(-1)`` reaches the whole sandbox but this driver and bubblewrap's PID 1); record ``phase NAME exit CODE
SECONDS``, ``... signal NUMBER ...`` or ``... timeout - ...``, and stop at the first phase that does not exit 0.
A native program can print anything but a record, yet it can always exit 0 without doing its job.
"""
import marshal
import posix
import resource


# Run in the subinterpreter before the hook: types reads a traceback's tb_frame when imported (for FrameType), and
# from CPython 3.12 on, loading a frozen module (os, stat, ...) raises marshal.loads: import them while both may.
SUB_PRELUDE = """import _imp, marshal, sys, types
if sys.version_info >= (3, 12):
    import importlib.machinery, importlib.util, ntpath, os
"""


def read_preamble():
    """(nonce, header, what came after them) from stdin; the buffer keeps no copy of the nonce."""
    request = bytearray()
    while request.count(b"\n") < 2 or len(request) < _header_end(request):
        chunk = posix.read(0, 1 << 16)
        if not chunk:
            raise EOFError("the sandbox's preamble ended early")
        request += chunk
    end, header_end = request.index(b"\n"), _header_end(request)
    nonce = bytes(request[:end])
    request[:end] = bytes(end)
    header = marshal.loads(bytes(request[request.index(b"\n", end + 1) + 1:header_end]))
    return nonce, header, bytes(request[header_end:])


def _header_end(request):
    first = request.index(b"\n")
    second = request.index(b"\n", first + 1)
    return second + 1 + int(request[first + 1:second])


def read_rest(start):
    """The program: what stdin holds after the preamble, to its end (the parent may send it much later)."""
    chunks = [start]
    while chunk := posix.read(0, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def run_python(nonce, header, start):
    write, leave, encode, replace = posix.write, posix._exit, str.encode, bytes.replace
    args_of = BaseException.args.__get__
    try:
        import _xxsubinterpreters as interpreters  # CPython 3.11 and 3.12: run_string raises RunFailedError
        sub = interpreters.create(isolated=False)  # shares the GIL and allows every extension module
    except ImportError:
        import _interpreters as interpreters  # CPython 3.13: run_string returns what went wrong (or None)
        sub = interpreters.create("legacy")
    run, failure, str_type, tuple_type, type_of = interpreters.run_string, BaseException, str, tuple, type
    unreadable = "<class 'RunFailedError'>: sandbox: the failure's reason was tampered with"

    def attempt(code):
        """None only when ``code`` ran to its end in the subinterpreter, else a reason string.

        Any exception out of ``run`` is a failure, whatever it carries: on CPython 3.11 the program can reach and
        change the driver's exception class (``__init__`` giving it no message, a message that is not a str), so
        its content is taken only when it is exactly the tuple and str that C made, and never decides the outcome.
        """
        try:
            error = run(sub, code)  # 3.13: a types.SimpleNamespace (an immutable type), never program code
        except failure as exc:
            args = args_of(exc)
            first = args[0] if type_of(args) is tuple_type and args else None
            return first if type_of(first) is str_type else unreadable
        if error is None:
            return None
        name, message = error.type.__name__, error.msg
        if type_of(name) is str_type and type_of(message) is str_type:
            return "<class '" + name + "'>: " + message
        return unreadable

    namespace = {}
    exec(marshal.loads(header["hook"]), namespace)
    namespace["install"](header["trusted"])  # only now: the hook refuses new interpreters
    del namespace
    problem = attempt(SUB_PRELUDE + f"exec(marshal.loads({header['hook']!r}))\ninstall({header['trusted']!r})\n"
                      "del install, marshal, _imp\n")
    if problem is not None:  # no hook, no program: fail closed
        write(1, b"\n" + nonce + b" failed sandbox: no audit hook in the subinterpreter: " + encode(problem)[:300]
              .replace(b"\n", b" ") + b"\n")
        leave(0)
    del header
    program = read_rest(start).decode("utf-8")  # everything is ready: the parent may send the program any time
    no_stdin()
    reason = attempt(program)
    if reason is None:
        record = b" passed\n"
    else:
        reason = encode(reason, "utf-8", "replace")[:1000]
        record = b" failed " + replace(replace(reason, b"\n", b" "), b"\r", b" ") + b"\n"
    write(1, b"\n" + nonce + record)
    leave(0)


def no_stdin():
    """The program reads an empty stdin, not the protocol."""
    null = posix.open("/dev/null", posix.O_RDONLY)
    posix.dup2(null, 0)
    posix.close(null)


def kill_leftovers():
    import signal
    import time

    try:
        posix.kill(-1, signal.SIGKILL)  # every process this driver may signal but itself (and PID 1)
    except ProcessLookupError:
        pass
    while True:  # reap them, so they stop counting against the process limit
        try:
            if posix.waitpid(-1, posix.WNOHANG)[0] == 0:
                time.sleep(0.005)
        except ChildProcessError:
            return


def run_phases(nonce, header):
    import subprocess
    import time

    no_stdin()
    for phase in header["phases"]:
        started = time.monotonic()
        try:
            child = subprocess.Popen(phase["argv"], stdin=subprocess.DEVNULL)
            code = child.wait(timeout=phase["timeout_s"])
            outcome = f"exit {code}" if code >= 0 else f"signal {-code}"
        except subprocess.TimeoutExpired:
            outcome, code = "timeout -", -1
        except OSError as exc:  # not found, not executable: the shell's 127 and 126
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            outcome = f"exit {code}"
        seconds = time.monotonic() - started
        kill_leftovers()
        posix.write(1, b"\n" + nonce + f" phase {phase['name']} {outcome} {seconds:.3f}\n".encode())
        if code != 0:
            break
    posix._exit(0)


def _main():
    nonce, header, start = read_preamble()
    for name, limit in header["rlimits"].items():
        resource.setrlimit(getattr(resource, name), tuple(limit))
    if header["mode"] == "python":
        run_python(nonce, header, start)
    read_rest(start)
    run_phases(nonce, header)


_main()
