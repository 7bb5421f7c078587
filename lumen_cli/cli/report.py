"""Counts of done / skipped / failed files, the closing summary line and the exit code
(after black's ``report.py``)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

from lumen_cli.errors import EXIT_FAILED, EXIT_OK


@dataclass
class Report:
    quiet: bool = False
    json_lines: bool = False
    done: int = 0
    skipped: int = 0
    failed: int = 0
    started: float = field(default_factory=time.perf_counter)

    def record(self, status: str, source: str, dest: str | None, **info) -> None:
        """status: 'done' | 'skipped' | 'failed'. A JSON record goes to stdout with --json."""
        setattr(self, status, getattr(self, status) + 1)
        if self.json_lines:
            rec = {"input": source, "output": dest, "status": status, **info}
            sys.stdout.write(json.dumps(rec) + "\n")
            sys.stdout.flush()

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed else EXIT_OK

    def summary(self) -> str:
        secs = time.perf_counter() - self.started
        return f"done {self.done}, skipped {self.skipped}, failed {self.failed} in {secs:.1f} s"
