"""Sections of BENCHMARKS.md written by scripts other than ``benchmarks/run.py``.

Each such section sits between two identical marker lines (``<!-- name -->``); its script
replaces it, and ``run.py`` (which rewrites the file) carries every marked section over.
"""

from __future__ import annotations

import re
from pathlib import Path

MARK = re.compile(r"<!-- [a-z0-9-]+ -->")


def replace_section(text: str, mark: str, lines: list[str]) -> str:
    """``text`` with the section between two ``mark`` lines replaced by ``lines`` (which do not
    include the markers), or appended when absent."""
    block = "\n".join([mark, *lines, mark])
    if text.count(mark) >= 2:
        head, _, rest = text.partition(mark)
        _, _, tail = rest.partition(mark)
        return head + block + tail
    return text.rstrip("\n") + "\n\n" + block + "\n"


def write_section(path, mark: str, lines: list[str]) -> None:
    """Replace (or append) the section between ``mark`` lines of the file ``path``; a file
    that does not exist yet is created holding only that section."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    path.write_text(replace_section(text, mark, lines).lstrip("\n"))


def marked_sections(text: str) -> list[str]:
    """Every marked section of ``text``, markers included, in order."""
    out, pos = [], 0
    while m := MARK.search(text, pos):
        end = text.find(m.group(0), m.end())
        if end < 0:
            break
        out.append(text[m.start() : end + len(m.group(0))])
        pos = end + len(m.group(0))
    return out
