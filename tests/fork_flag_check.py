"""Walk an argv as one of the fork's argument parsers would, from its flag list in ``fixtures/fork_flags/``.

    check_against_fork(argv, fork_flags("mtf_arguments_flags.json"))
The flag lists were read off the fork's own ``megatron/arguments.py`` (see ``fixtures/fork_flags/README.md``).
"""
import json
from pathlib import Path
from typing import Any

FLAG_DIR = Path(__file__).parent / "fixtures" / "fork_flags"


def fork_flags(file_name: str) -> dict[str, dict[str, Any]]:
    return json.loads((FLAG_DIR / file_name).read_text())


def check_against_fork(argv: list[str], flags: dict[str, dict[str, Any]]) -> None:
    """Every flag known, a value where it takes one, choices kept."""
    i = 0
    while i < len(argv):
        flag = argv[i]
        assert flag in flags, f"{flag} is not a flag of the fork's megatron/arguments.py"
        if flags[flag]["takes_value"]:
            value = argv[i + 1]
            assert not value.startswith("--"), f"{flag} needs a value"
            assert value in flags[flag].get("choices", [value]), f"{flag} {value} is not one of its choices"
            i += 2
        else:
            i += 1
