"""Debian's Go and Rust toolchains, offline, and the build they share: compiled once, read-only in every check.

    build = shared_build()                      # CACHE/codeft/eval-toolchains/KEY, built on first use
    job = go_job(build, text, compile_s=60, run_s=20)        # go test -c main_test.go, then ./main.test
    job = rust_job(build, text, compile_s=60, run_s=20)      # rustc --test main.rs against rand/regex/md5, then run

Debian's binaries are called by absolute path (``/usr/bin/go``, ``/usr/bin/rustc``, ``/usr/bin/cargo``):
another ``rustc`` (rustup's) may come first on ``PATH``. Go runs in GOPATH mode over ``/usr/share/gocode``
(``golang-github-stretchr-testify-dev`` puts testify there) with cgo off; Rust's crates come from
``/usr/share/cargo/registry`` (``librust-{rand,regex,md5}-dev``) through a private ``CARGO_HOME`` whose
``config.toml`` replaces crates.io with that folder and sets ``offline = true``.

The shared build, made once per toolchain version in a folder named by a hash of the versions and recipe:
Go's build cache warmed by compiling a test that imports testify and every package HumanEval-X adds (each
check then compiles only its own file, the cache bound read-only: Go reads it and writes nothing), and the
three crates compiled by cargo as a library's dependencies (each check then runs one ``rustc --test`` with
``--extern`` for them). It is trusted code from Debian packages only, built outside the sandbox; the folder is
made world-readable for the sandbox's unprivileged user. Missing toolchains are an error that names the
packages to install (``make system-packages`` does). Library module.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from guardrails.atomic_folder import atomic_output_dir
from evaluation.sandbox_argv import ArgvProgram, Phase
from evaluation.sandbox_binds import WORK_DIR
from evaluation.toolchain_jobs import drained

GO = "/usr/bin/go"
RUSTC = "/usr/bin/rustc"
CARGO = "/usr/bin/cargo"
GOPATH = "/usr/share/gocode"
CARGO_REGISTRY = "/usr/share/cargo/registry"
PACKAGES = {"go": "golang-go golang-github-stretchr-testify-dev",
            "rust": "rustc cargo librust-rand-dev librust-regex-dev librust-regex+default-dev librust-md5-dev"}
# HumanEval-X's IMPORT_HELPER["go"]: the standard packages a completion may use without importing them
GO_PACKAGES = ("math", "strings", "fmt", "strconv", "time", "bytes", "regexp", "sort", "math/rand", "crypto/md5")
CRATES = {"rand": "0.8", "regex": "1", "md5": "0.7"}
SYSTEM_PATH = "/usr/bin:/bin"
RECIPE_VERSION = 1  # bump when the recipe below changes: a new folder is built


class ToolchainMissing(RuntimeError):
    """A toolchain or its libraries are not installed; the message names the Debian packages."""


@dataclass(frozen=True)
class SharedBuild:
    root: Path
    go_cache: Path
    rust_deps: Path
    externs: tuple[tuple[str, str], ...]  # crate -> its .rlib


def _require(language: str) -> None:
    if language == "go":
        missing = [p for p in (GO, f"{GOPATH}/src/github.com/stretchr/testify/assert") if not os.path.exists(p)]
    else:
        crates = {p.name.rsplit("-", 1)[0] for p in Path(CARGO_REGISTRY).glob("*-*")} if os.path.isdir(CARGO_REGISTRY) else set()
        missing = [p for p in (RUSTC, CARGO) if not os.path.exists(p)]
        missing += [f"{CARGO_REGISTRY}/{name}-*" for name in CRATES if name not in crates]
    if missing:
        raise ToolchainMissing(f"{language}: {missing[0]} is missing; install Debian's toolchain: apt-get install -y "
                               f"{PACKAGES[language]} (make system-packages does)")


def _version(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, env={"PATH": SYSTEM_PATH}).stdout.strip()


def go_env(cache: Path | str, work: str) -> dict[str, str]:
    """Go's environment; ``work`` is its home and temporary folder."""
    return {"PATH": SYSTEM_PATH, "HOME": work, "TMPDIR": work, "GOPATH": GOPATH, "GO111MODULE": "off", "GOCACHE": str(cache), "GOENV": "off", "GOFLAGS": "",
            "CGO_ENABLED": "0", "GOMAXPROCS": "2", "GOTOOLCHAIN": "local"}


def _warm_go_source() -> str:
    imports = "\n".join(f'    _ "{p}"' for p in GO_PACKAGES)
    return (f'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n{imports}\n)\n\n'
            "func TestWarm(t *testing.T) {\n    assert.New(t).Equal(1, 1)\n}\n")


def cargo_files() -> dict[str, str]:
    deps = "".join(f'{name} = "{version}"\n' for name, version in CRATES.items())
    return {"Cargo.toml": f'[package]\nname = "shared_crates"\nversion = "0.1.0"\nedition = "2021"\n\n'
                          f"[dependencies]\n{deps}",
            "src/lib.rs": "",
            "cargo-home/config.toml": f'[source.crates-io]\nreplace-with = "debian"\n\n[source.debian]\n'
                                      f'directory = "{CARGO_REGISTRY}"\n\n[net]\noffline = true\n'}


def cargo_env(home: Path, target: Path) -> dict[str, str]:
    return {"PATH": SYSTEM_PATH, "HOME": str(home), "CARGO_HOME": str(home), "CARGO_TARGET_DIR": str(target),
            "RUSTC": RUSTC, "RUSTDOC": "/usr/bin/rustdoc", "CARGO_PROFILE_DEV_DEBUG": "0", "CARGO_TERM_COLOR": "never"}


def build_key() -> str:
    versions = [_version([GO, "version"]), _version([RUSTC, "--version"]), _version([CARGO, "--version"])]
    recipe = json.dumps([RECIPE_VERSION, versions, _warm_go_source(), cargo_files(), GO_PACKAGES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def default_cache_root() -> Path:
    """``$CODEFT_TOOLCHAIN_CACHE``, else root's ``/var/cache/codeft/...`` (the sandbox's unprivileged user must be
    able to reach it, and root's home is private), else ``~/.cache/codeft/eval-toolchains``."""
    if os.environ.get("CODEFT_TOOLCHAIN_CACHE"):
        return Path(os.environ["CODEFT_TOOLCHAIN_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/codeft/eval-toolchains")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "codeft" / "eval-toolchains"


def _build(folder: Path) -> dict:
    go_cache, work = folder / "go-cache", folder / "go-warm"
    work.mkdir(parents=True)
    (work / "main_test.go").write_text(_warm_go_source(), encoding="utf-8")
    subprocess.run([GO, "test", "-c", "-o", "warm.test", "main_test.go"], cwd=work, check=True, capture_output=True,
                   env=go_env(go_cache, str(work)))
    shutil.rmtree(work)
    crates = folder / "rust"
    for name, text in cargo_files().items():
        (crates / name).parent.mkdir(parents=True, exist_ok=True)
        (crates / name).write_text(text, encoding="utf-8")
    built = subprocess.run([CARGO, "build", "--offline", "--message-format=json"], cwd=crates, check=True,
                           capture_output=True, text=True, env=cargo_env(crates / "cargo-home", crates / "target"))
    externs = {}
    for line in built.stdout.splitlines():
        message = json.loads(line) if line.startswith("{") else {}
        if message.get("reason") == "compiler-artifact" and message["target"]["name"] in CRATES:
            rlib = next(f for f in message["filenames"] if f.endswith(".rlib"))
            externs[message["target"]["name"]] = Path(rlib).name  # the folder is renamed once built
    for path in [folder, *folder.rglob("*")]:  # the sandbox's unprivileged user reads it
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    return {"externs": externs}


def _located(folder: Path, record: dict) -> SharedBuild:
    deps = folder / "rust" / "target" / "debug" / "deps"
    externs = tuple((name, str(deps / file)) for name, file in sorted(record["externs"].items()))
    return SharedBuild(folder, folder / "go-cache", deps, externs)


def shared_build(languages: tuple[str, ...] = ("go", "rust"), cache_root: Path | None = None) -> SharedBuild:
    """The shared build for this machine's toolchains, built on first use (a minute at most on 2 cores)."""
    for language in languages:
        _require(language)
    folder = (cache_root or default_cache_root()) / build_key()
    record_path = folder / "built.json"
    if not record_path.is_file():
        with atomic_output_dir(folder) as tmp:
            record = _build(tmp)
            (tmp / "built.json").write_text(json.dumps(record), encoding="utf-8")
            (tmp / "built.json").chmod(0o644)
    return _located(folder, json.loads(record_path.read_text(encoding="utf-8")))


def go_job(build: SharedBuild, program: str, compile_s: float, run_s: float) -> ArgvProgram:
    """HumanEval-X's ``go test main_test.go``, as its two halves: build the test binary (vet included), run it."""
    return ArgvProgram(phases=(Phase("compile", (GO, "test", "-c", "-o", "main.test", "main_test.go"), compile_s),
                               Phase("run", drained(("./main.test", f"-test.timeout={int(run_s)}s")), run_s)),
                       files={"main_test.go": program.encode("utf-8")}, ro_binds=(str(build.root),),
                       env={**go_env(build.go_cache, WORK_DIR), "TMPDIR": "/tmp"}, proc=True)


def rust_argv(build: SharedBuild) -> tuple[str, ...]:
    externs = [arg for name, path in build.externs for arg in ("--extern", f"{name}={path}")]
    return (RUSTC, "--edition", "2021", "--test", "main.rs", "-o", "main.test", "-C", "debuginfo=0", "-C",
            "strip=debuginfo", "-A", "warnings", "-L", f"dependency={build.rust_deps}", *externs)


def rust_job(build: SharedBuild, program: str, compile_s: float, run_s: float) -> ArgvProgram:
    """HumanEval-X's ``cargo test`` of one file, as ``rustc --test`` against the shared crates, then the binary."""
    return ArgvProgram(phases=(Phase("compile", rust_argv(build), compile_s), Phase("run", drained(("./main.test",)), run_s)),
                       files={"main.rs": program.encode("utf-8")}, ro_binds=(str(build.root),),
                       env={"PATH": SYSTEM_PATH, "HOME": WORK_DIR, "TMPDIR": "/tmp"}, proc=True)
