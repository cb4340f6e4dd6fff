"""Wrong programs never score a pass: every way the issue found (and the variants) to forge the pass fails.

Each hostile program below is a HumanEval-style check whose assertion is false, plus an attempt to make the
harness record a pass anyway: find the nonce (frames, tracebacks, generators, gc, /proc/self/mem, ctypes,
crafted code objects, the driver's interpreter), skip the checks (a trace function jumping over them, a signal
handler, an early exit), or print a pass record. Each must end ``failed`` (or ``timed out``), never ``passed``;
where the refusal has a message, the reason shows it.
"""
import textwrap

import pytest

from evaluation.python_programs import harness_wrapped
from tests.sandbox_fixtures import make_box, run, without_hook

WRONG = "\ndef check(candidate):\n    assert candidate(2) == 5, 'wrong answer'\n\ncheck(lambda x: x)\n"


@pytest.fixture(scope="module")
def box():
    return make_box()


def forged(box, attack: str):
    """Run the attack, then the failing check; return the result."""
    result = run(box, attack + WRONG)
    assert result.status != "passed", (attack, result)
    return result


def say(nonce_expression: str) -> str:
    """Print a pass record for the nonce the attack found, then leave before the check runs."""
    return f"import os\nos.write(1, b'\\n' + ({nonce_expression}) + b' passed\\n')\nos._exit(0)\n"


# Find the driver's frame through the one call that lists every interpreter's threads, print its nonce.
CURRENT_FRAMES = """import os, sys
for frame in sys._current_frames().values():
    while frame is not None:
        if "nonce" in frame.f_locals:
            os.write(1, b"\\n" + frame.f_locals["nonce"] + b" passed\\n")
            os._exit(0)
        frame = frame.f_back
"""
# Skip the failing assertion: a trace function moves the line pointer past it; the module then ends normally.
SETTRACE_JUMP = """import sys
def tracer(frame, event, arg):
    if event == "line" and frame.f_code.co_name == "check":
        frame.f_lineno = frame.f_code.co_firstlineno + 2
    return tracer
sys.settrace(tracer)
def check(candidate):
    assert candidate(2) == 5, "wrong answer"
    return
check(lambda x: x)
sys.settrace(None)
"""

# Reach the driver's own interpreter (CPython 3.11 shares classes), plant code that runs there, look for frames.
DRIVER_REACH = """import sys
ours = {id(m.__dict__) for m in list(sys.modules.values())}
main_globals = []
for cls in object.__subclasses__():
    for value in vars(cls).values():
        g = getattr(value, "__globals__", None)
        if g is not None and id(g) not in ours and "sys" in g:
            main_globals.append(g)
assert main_globals, "the driver's modules are not visible from here"
main_sys = main_globals[0]["sys"]
assert main_sys is not sys and "_xxsubinterpreters" in main_sys.modules, "not the driver's sys"
import os
real_write, real_exit = os.write, os._exit
def evil(*args, **kwargs):
    frame = sys._getframe(1)   # run in the driver's interpreter, whose own hook refuses this
    while frame is not None:
        if "nonce" in frame.f_locals:
            real_write(1, b"\\n" + frame.f_locals["nonce"] + b" passed\\n")
            real_exit(0)
        frame = frame.f_back
for module in list(main_sys.modules.values()):
    for name in ("write", "_exit", "read", "loads"):
        if hasattr(module, name):
            setattr(module, name, evil)   # the driver bound what it calls before the program started
xi = main_sys.modules["_xxsubinterpreters"]
xi.RunFailedError.__init__ = evil
xi.RunFailedError.__str__ = evil
for attempt in (lambda: xi.create(), lambda: xi.run_string(xi.get_main(), "print('in the driver')")):
    try:
        attempt()
        raise AssertionError("the driver's interpreter obeyed")
    except RuntimeError:
        pass   # no new interpreter (the hook), and the driver's is running
"""

# CPython 3.11: reach the driver's exception class through the shared class tree and make it carry no message,
# which the driver once read as "no failure".
EMPTY_DRIVER_FAILURE = """def find(cls):
    for sub in cls.__subclasses__():
        if sub.__name__ == "RunFailedError" or find(sub):
            return sub if sub.__name__ == "RunFailedError" else find(sub)
failure = find(BaseException)
if failure is not None:
    failure.__init__ = lambda self, *args: BaseException.__init__(self, None)
"""
# Make the harness prelude's ``with redirect_stdout(...)`` swallow the failing assertion: its __exit__ returns True.
SWALLOWING_EXIT = ("import contextlib\n"
                   "contextlib._RedirectStream.__exit__.__code__ = (lambda self, *exc: True).__code__\n")

ATTACKS = {
    "the driver's failure made empty (3.11)": (EMPTY_DRIVER_FAILURE, "the failure's reason was tampered with"),
    "a context manager's __exit__ made to swallow the failure": (SWALLOWING_EXIT,
                                                                 "replacing a function's __code__ is refused"),
    "sys._getframe f_locals": ("import sys\nf = sys._getframe()\nwhile f.f_back: f = f.f_back\n"
                               + say("f.f_locals['nonce']"), "sys._getframe is refused"),
    "inspect.stack": ("import inspect\nframes = inspect.stack()\n" + say("frames[-1].frame.f_locals['nonce']"),
                      "sys._getframe is refused"),
    "traceback tb_frame": ("try:\n    1 / 0\nexcept ZeroDivisionError as exc:\n    f = exc.__traceback__.tb_frame\n"
                           + say("f.f_back.f_locals['nonce']"), "frame attributes"),
    "sys._current_frames": (CURRENT_FRAMES, "sys._current_frames is refused"),
    "sys._current_exceptions": ("import sys\nsys._current_exceptions()\n", "sys._current_exceptions is refused"),
    "generator gi_frame": ("def g():\n    yield 1\ngen = g()\nnext(gen)\nf = gen.gi_frame\n", "frame attributes"),
    "coroutine cr_frame": ("async def c():\n    pass\nco = c()\nf = co.cr_frame\n", "frame attributes"),
    "async generator ag_frame": ("async def a():\n    yield 1\nf = a().ag_frame\n", "frame attributes"),
    "gc.get_objects scan": ("import gc\nfor o in gc.get_objects():\n    pass\n", "gc.get_objects is refused"),
    "gc.get_referrers": ("import gc\ngc.get_referrers(len)\n", "gc.get_referrers is refused"),
    "gc.get_referents": ("import gc\ngc.get_referents(globals())\n", "gc.get_referents is refused"),
    "settrace jump over the checks": (SETTRACE_JUMP, "sys.settrace is refused"),
    "setprofile": ("import sys\nsys.setprofile(lambda frame, event, arg: None)\n", "sys.setprofile is refused"),
    "threading.settrace": ("import sys, threading\nthreading.settrace(lambda *a: None)\nt = threading.Thread("
                           "target=print)\nt.start()\nt.join()\nassert sys.gettrace() is None\n", None),
    # 3.12 and later profile through sys.monitoring: the refusal surfaces as cProfile's own error
    "cProfile": ("import cProfile\ncProfile.Profile().enable()\n",
                 ("sys.setprofile is refused", "_pystart_callback", "set_events")),
    "/proc/self/mem": ("open('/proc/self/mem', 'rb')\n", "not readable here"),
    "/proc via dir_fd": ("import os\nroot = os.open('/', os.O_RDONLY)\nos.open('proc/self/maps', os.O_RDONLY, "
                         "dir_fd=root)\n", "not readable here"),
    "/proc/1/environ": ("open('/proc/1/environ', 'rb')\n", "not readable here"),
    "ctypes import": ("import ctypes\n", "module ctypes is not available"),
    "ctypes through importlib": (
        "import importlib.util\nspec = importlib.util.find_spec('_ctypes')\nimportlib.util.module_from_spec(spec)\n",
        "module _ctypes is not available"),
    "private test module": ("import _testcapi\n", "not available"),
    "marshal a crafted code object": (
        "import marshal\ncode = marshal.dumps(compile('x = 1', 's', 'exec'))\nexec(marshal.loads(code))\n",
        "marshal.loads"),
    "crafted .pyc imported from the working folder": (
        "import importlib.util, marshal, os, sys\nos.makedirs('__pycache__')\nopen('evil.py', 'w').write('x = 1')\n"
        "unchecked = (1).to_bytes(4, 'little') + bytes(8)  # a hash-based .pyc whose source is never checked\n"
        "data = importlib.util.MAGIC_NUMBER + unchecked + marshal.dumps(compile('x = 2', 'evil', 'exec'))\n"
        "open(importlib.util.cache_from_source('evil.py'), 'wb').write(data)\nsys.path.insert(0, '.')\n"
        "import evil\n", "marshal.loads"),
    "code.replace": ("(lambda: 0).__code__.replace(co_code=(lambda: 1).__code__.co_code)\n", "code.__new__"),
    "types.CodeType": ("import types\nc = (lambda: 0).__code__\ntypes.CodeType(*[getattr(c, 'co_' + n) for n in ("
                       "'argcount posonlyargcount kwonlyargcount nlocals stacksize flags code consts names varnames "
                       "filename name qualname firstlineno linetable exceptiontable freevars cellvars').split()])\n",
                       "code.__new__"),
    "signal handler receives the driver's frame": (
        "import signal\nsignal.signal(signal.SIGALRM, lambda number, frame: None)\nsignal.setitimer("
        "signal.ITIMER_REAL, 0.01)\n", "main thread of the main interpreter"),
    "fork a second driver": ("import os\nif os.fork() == 0:\n    pass\n", "os.fork is refused"),
    "another interpreter": ("import _xxsubinterpreters\n", "not available"),
    "an audit hook of its own": ("import sys\nseen = []\nsys.addaudithook(lambda e, a: seen.append(e))\n"
                                 "open('x', 'w').close()\nassert not seen, 'the hook was added'\n", None),
    "print a pass record": ("print('\\npassed')\nprint('0' * 32 + ' passed')\nimport os\nos._exit(0)\n",
                            "exited before the tests finished"),
    "symlink into /proc": ("import os\nos.symlink('/proc/self/mem', 'mem')\n", "os.symlink is refused"),
    "sys.monitoring callback (3.12+)": ("import sys\nsys.monitoring.use_tool_id(3, 'x')\nsys.monitoring.register_callback"
                                        "(3, sys.monitoring.events.PY_START, print)\n",
                                        "sys.monitoring.register_callback is refused"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_scores_failed(box, name):
    attack, message = ATTACKS[name]
    if name.endswith("(3.12+)") and box.python_version < (3, 12):
        message = "module 'sys' has no attribute 'monitoring'"
    result = forged(box, attack)
    expected = (message or "wrong answer",) if not isinstance(message, tuple) else message
    assert any(text in result.reason for text in expected), (name, result)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_scores_failed_as_the_real_commands_run_programs(box, name):
    """The same attacks inside the harness prelude that humaneval, humanevalfix, infill and mutantfix wrap every
    Python program in (``python_programs.harness_wrapped``): the prelude adds nothing an attack can use."""
    attack, _ = ATTACKS[name]
    result = run(box, harness_wrapped(textwrap.dedent(attack) + WRONG))
    assert result.status != "passed", (name, result)


def test_the_prelude_runs_no_python_code_after_the_program():
    """Without the hook's refusal, a program that rewrites contextlib still fails inside the harness prelude:
    nothing written in Python (a ``with`` block's ``__exit__``) runs between its failure and the module's end."""
    unguarded = make_box()
    unguarded._hook = without_hook(unguarded)
    assert run(unguarded, harness_wrapped(SWALLOWING_EXIT + WRONG)).status == "failed"
    assert run(unguarded, harness_wrapped(SWALLOWING_EXIT + "x = 1\n")).status == "passed"


@pytest.mark.parametrize("attack", [CURRENT_FRAMES + WRONG, SETTRACE_JUMP, DRIVER_REACH + WRONG])
def test_without_the_audit_hook_these_attacks_would_forge_a_pass(box, attack):
    """The attacks are real: with a hook that refuses nothing (here swapped in after the sandbox's own check),
    they score a pass for a wrong program. With the hook they fail (test_attack_scores_failed)."""
    unguarded = make_box()
    if attack.startswith(DRIVER_REACH) and unguarded.python_version >= (3, 12):
        pytest.skip("CPython 3.12 and later share no classes between interpreters: nothing to reach")
    unguarded._hook = without_hook(unguarded)
    assert run(unguarded, attack).result == "passed"
    assert run(box, attack).status == "failed"


def test_the_driver_interpreter_is_reachable_but_useless(box):
    """CPython 3.11 shares classes between interpreters: the program reaches the driver's modules through
    ``object.__subclasses__()``, replaces their functions, makes the driver's exception run its code, and asks for
    frames from there. None of it yields a pass."""
    attack = DRIVER_REACH
    result = run(box, attack + WRONG)
    if box.python_version >= (3, 12):  # classes are no longer shared: the attack stops at its first step
        assert result.result == "failed: AssertionError: the driver's modules are not visible from here", result
        return
    # evil ran as the driver built its failure record, in the driver's interpreter, whose hook refused the frame
    assert result.result == "failed: sandbox: sys._getframe is refused", result
    assert run(box, attack).result == "passed"  # a right program still passes: the driver is unharmed


def test_a_hostile_exception_cannot_pass_or_flood_the_reason(box):
    result = forged(box, "class Sneaky(AssertionError):\n    def __str__(self):\n        return 'x\\n' * 10 ** 6\n"
                         "raise Sneaky()\n")
    assert result.reason.startswith("Sneaky: x x x") and len(result.reason) <= 200


def test_what_the_pass_does_not_protect_against(box):
    """Documented limits (README, evaluation/sandbox.py): the checks run in the candidate's interpreter. An
    object whose ``__eq__`` is always true passes ``assert f(x) == y``, as in every HumanEval harness."""
    always_equal = ("class Anything:\n    def __eq__(self, other):\n        return True\n"
                    "\ndef check(candidate):\n    assert candidate(2) == 5\n\ncheck(lambda x: Anything())\n")
    assert run(box, always_equal).result == "passed"
