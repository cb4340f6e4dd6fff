"""The audit hook (PEP 578) that guards both interpreters of a sandboxed Python program; runs only in the sandbox.

Not imported by the project: ``evaluation.sandbox`` sends this file's text to ``sandbox_driver.py``, which runs it
in its own interpreter and in the program's subinterpreter (before the program) and calls
``install(trusted_roots)``. An audit hook cannot be removed; this one refuses, in the interpreter it guards:

- frames and interpreter introspection: ``sys._getframe`` (as ``ValueError``, which ``typing``,
  ``collections.namedtuple``, ``enum`` and ``logging`` already treat as "no caller frame"),
  ``sys._current_frames`` and ``sys._current_exceptions`` (they list every interpreter's threads, the
  driver's too), the frame attributes ``tb_frame``, ``gi_frame``, ``cr_frame``, ``ag_frame`` and ``f_*``
  (as ``AttributeError``), ``sys.settrace``/``setprofile`` (``threading``'s call them), ``sys.monitoring``
  callbacks, ``gc.get_objects``/``get_referrers``/``get_referents``, new audit hooks;
- ways to read raw memory: ``ctypes``/``cffi`` and every ``ctypes.*`` event, CPython's private test modules,
  code objects not made by the compiler (``code.__new__``/``replace``, a function's ``__code__`` replaced, and ``marshal.loads`` unless the bytes
  are the payload of a ``.pyc`` just opened under a trusted, read-only folder: the import system's own use),
  ``open`` of anything under ``/proc`` or ``/sys`` (a ``proc`` component anywhere, so ``dir_fd`` tricks fail too;
  the Python sandbox mounts no ``/proc`` at all);
- more interpreters (``cpython.PyInterpreterState_New``), ``os.fork``/``forkpty`` (a forked child would run
  the driver's continuation), ``os.symlink``.

``signal`` needs no refusal (it has no audit event, and a builtin module can be rebuilt through
``importlib.util.module_from_spec`` whatever ``import`` refuses): a handler receives the current frame, but only
the main interpreter may install one, and the program never runs there (``sandbox_driver.py``).

The hook keeps no state a program can reach: everything it calls is bound when it is made (a program may
replace ``builtins``, ``os`` or ``posixpath`` functions), it calls no method of an argument it did not check
the exact type of, and the function itself is referenced only by the interpreter's hook list.
"""


def install(trusted_roots):
    import posix
    import sys

    str_type, bytes_type, int_type = str, bytes, int
    type_of, subclass = type, issubclass
    as_str, decode = str.__str__, bytes.decode
    startswith, endswith, split, join = str.startswith, str.endswith, str.split, "/".join
    getcwd, os_open, os_read, os_close, read_only = posix.getcwd, posix.open, posix.read, posix.close, posix.O_RDONLY
    roots = tuple(root.rstrip("/") + "/" for root in trusted_roots)
    pyc_payloads = {}
    last_pyc = [None]  # the import system opens a .pyc, then unmarshals its payload (bytes 16 on)
    frame_attributes = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
    refused_modules = frozenset({"ctypes", "_ctypes", "cffi", "_cffi_backend", "_interpreters", "_interpchannels",
                                 "_interpqueues", "_xxsubinterpreters", "_xxinterpchannels"})
    refused_events = frozenset({
        "sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile",
        "sys.monitoring.register_callback", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
        "code.__new__", "marshal.load", "cpython.PyInterpreterState_New", "os.fork",
        "os.forkpty", "os.symlink"})
    denied_value, denied_attribute, denied_import, denied = ValueError, AttributeError, ImportError, PermissionError
    denied_hook = RuntimeError  # sys.addaudithook swallows a RuntimeError: the new hook is simply not added

    def absolute(path):
        """'/a/./b/../c' -> '/a/c'; relative to the working folder; symlinks are not followed (none can be made)."""
        if not startswith(path, "/"):
            path = getcwd() + "/" + path
        parts = []
        for part in split(path, "/"):
            if part == ".." and parts:
                parts.pop()
            elif part not in ("", ".", ".."):
                parts.append(part)
        return "/" + join(parts)

    def text_path(value):
        kind = type_of(value)
        if subclass(kind, int_type):
            return None  # a file descriptor the program already holds
        if subclass(kind, str_type):
            return as_str(value)  # an exact copy: a str subclass's own methods never run here
        if subclass(kind, bytes_type):
            return decode(value, "utf-8", "surrogateescape")
        raise denied("sandbox: open() takes a str, bytes or file descriptor here")

    def payload(path):
        if path not in pyc_payloads:
            fd = os_open(path, read_only)
            try:
                chunks = []
                while True:
                    chunk = os_read(fd, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                os_close(fd)
            pyc_payloads[path] = b"".join(chunks)[16:]
        return pyc_payloads[path]

    def hook(event, args):
        if event == "open":
            raw = text_path(args[0])
            if raw is None:
                return
            path = absolute(raw)
            if "proc" in split(raw, "/") or "proc" in split(path, "/") or startswith(path, "/sys/") or path == "/sys":
                raise denied("sandbox: " + path + " is not readable here")
            if endswith(path, ".pyc"):
                last_pyc[0] = path if startswith(path, roots) else None
        elif event == "object.__setattr__":
            if type_of(args[1]) is str_type and args[1] == "__code__":  # another function's body under a trusted name (contextlib's __exit__, ...)
                raise denied("sandbox: replacing a function's __code__ is refused")
        elif event == "object.__getattr__":
            name = args[1]
            if type_of(name) is not str_type or name in frame_attributes or startswith(name, "f_"):
                raise denied_attribute("sandbox: frame attributes are not available here")
        elif event == "import":
            root = split(as_str(args[0]), ".")[0]
            if root in refused_modules or startswith(root, ("_test", "_xx", "_ctypes")):
                raise denied_import("sandbox: module " + root + " is not available here")
        elif event == "marshal.loads":
            data, pyc = args[0], last_pyc[0]
            last_pyc[0] = None
            if pyc is None or type_of(data) is not bytes_type or data != payload(pyc):
                raise denied("sandbox: marshal.loads of anything but the standard library's .pyc files is refused")
        elif event == "sys._getframe":
            raise denied_value("sandbox: sys._getframe is refused")
        elif event == "sys.addaudithook":
            raise denied_hook("sandbox: no further audit hooks")
        elif event in refused_events or startswith(event, "ctypes."):
            raise denied("sandbox: " + event + " is refused")

    sys.addaudithook(hook)
