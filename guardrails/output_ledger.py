"""What a command that drives other commands made (``scripts/demo.py``), so that it only ever deletes its own.

The demo starts over (``demo.fresh``) by deleting the folders an earlier demo run made: its training runs, its
base model. A folder of the same kind made by anyone else (a real training run at ``training.save``) must never
go, however alike it looks. Every such folder holds a record with a random nonce (``guardrails.output_records``);
the ledger ``demo.manifest.json`` keeps, per folder, the nonce of the record the demo made, and a folder is the
demo's own only while its record still carries that nonce.

    ledger = OutputLedger(Path("out/demo/demo.manifest.json"), DEMO)
    ledger.remember(save, own_run_folder(save, TRAINING_RUN))
    ledger.problem(save, TRAINING_RUN.record)      # None: the demo made it; else why not (never delete then)

Library module, no command line.
"""
from __future__ import annotations

import json
from pathlib import Path

from guardrails.output_paths import OutputRefused
from guardrails.output_records import OutputKind, read_record, record_problem, write_record

MADE_KEY = "made"


class OutputLedger:
    """The folders a driver made and the nonces of their records, in one JSON file of its own."""

    def __init__(self, path: Path, kind: OutputKind) -> None:
        self.path, self.kind = Path(path), kind
        problem = record_problem(self.path, kind)
        if problem is not None:
            raise OutputRefused(f"{self.path}: exists and {problem}; it is not the ledger of {kind.command}, so"
                                " it will not be written over. Move it away")

    def _made(self) -> dict[str, str]:
        if read_record(self.path) is None:
            return {}
        made = json.loads(self.path.read_text(encoding="utf-8")).get(MADE_KEY)
        return dict(made) if isinstance(made, dict) else {}

    def remember(self, output: Path, nonce: str) -> None:
        """Record that the driver made ``output``, whose record carries ``nonce``."""
        made = {**self._made(), str(Path(output).resolve()): nonce}
        write_record(self.path, self.kind, self.path.parent, files=[], facts={MADE_KEY: dict(sorted(made.items()))})

    def problem(self, output: Path, record_name: str) -> str | None:
        """None when ``output`` is a folder the driver made (its record still carries the remembered nonce)."""
        section = read_record(Path(output) / record_name)
        if section is None:
            return f"no {record_name} of this toolkit is in it"
        if self._made().get(str(Path(output).resolve())) != section.get("nonce"):
            return f"its {record_name} is not one {self.kind.command} made (not in {self.path})"
        return None
