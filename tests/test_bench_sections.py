"""benchmarks/sections.py: run.py carries every script-written section of BENCHMARKS.md over."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from sections import marked_sections, replace_section  # noqa: E402


def test_marked_sections_keep_names_with_digits():
    text = "# head\n"
    for mark, body in (("<!-- ablation -->", "a"), ("<!-- process-24mp -->", "b")):
        text = replace_section(text, mark, [body])
    secs = marked_sections(text)
    assert secs == [
        "<!-- ablation -->\na\n<!-- ablation -->",
        "<!-- process-24mp -->\nb\n<!-- process-24mp -->",
    ]
    again = replace_section(text, "<!-- process-24mp -->", ["c"])
    assert marked_sections(again)[1] == "<!-- process-24mp -->\nc\n<!-- process-24mp -->"
