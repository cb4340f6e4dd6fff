"""Shared pytest set-up: offline hub, fixture locations, a fresh set of claimed outputs for every test."""
import os
from pathlib import Path

import pytest

from guardrails.output_paths import forget_claims

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FORK_FIXTURES = Path(__file__).parent / "fixtures" / "fork"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fork_dir() -> Path:
    return FORK_FIXTURES


@pytest.fixture(scope="session")
def attack_world(tmp_path_factory) -> Path:
    """Tiny inputs for every command and the look-alikes of other tools, built once (``tests.attack_world``)."""
    from tests.attack_world import build_world

    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(autouse=True)
def fresh_claims():
    """Each test starts, like a fresh command process, with no claimed outputs (the claims are module state)."""
    forget_claims()
    yield
    forget_claims()
