"""The trusted first stage inside the sandbox: set the limits, run the untrusted program, then prove it finished.

Not imported by the project: ``evaluation.sandbox`` reads this file's text and runs it as
``python -I -S -B -c SOURCE`` inside bubblewrap, so the project folder never has to be visible in the sandbox.
Protocol on the pipes (the parent side lives in ``evaluation.sandbox``):

1. the driver writes ``READY`` on stdout (the parent may now move the sandbox into a pids cgroup, before any
   untrusted code can fork);
2. it reads one JSON header line from stdin (``nonce``, ``rlimits``) and the program text (the rest of stdin);
3. it sets the resource limits, runs the program with ``exec`` in a fresh namespace, and only if that returns
   writes the nonce on a line of its own. ``sys.exit(0)`` or ``os._exit(0)`` before the end never reach that
   line, so the parent counts a pass only when the nonce it chose is the output's last line.
"""
import json
import os
import resource
import sys


def _main():
    os.write(1, b"READY\n")
    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline())
    program = stdin.read().decode("utf-8")
    null = os.open(os.devnull, os.O_RDONLY)  # the program reads an empty stdin, not the protocol pipe
    os.dup2(null, 0)
    os.close(null)
    for name, limit in header["rlimits"].items():
        resource.setrlimit(getattr(resource, name), tuple(limit))
    nonce = header["nonce"].encode("ascii")  # a local: the program's globals never see it
    del header
    code = compile(program, "program.py", "exec")
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, b"\n" + nonce + b"\n")


_main()
