"""Collects the Python examples in README.md and docs/*.md as tests, so the docs cannot lie.

Every fenced block that opens with three backticks and ``python`` is run; the blocks of one
file run in order, as one test item, in one shared namespace (later examples build on earlier
ones) and a temporary working directory. A block fenced as ``python skip`` (an excerpt that
cannot run on its own) is not run.
"""

from __future__ import annotations

import gc
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix == ".md" and (file_path.name == "README.md" or "docs" in file_path.parts):
        return MarkdownFile.from_parent(parent, path=file_path)
    return None


class MarkdownFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        text = self.path.read_text(encoding="utf-8")
        blocks = [
            (text.count("\n", 0, match.start()) + 2, match.group(1))
            for match in _BLOCK.finditer(text)
        ]
        if blocks:
            # One item per file: the examples of a page build on each other, so they run in
            # order in one namespace and must never be split across xdist workers.
            yield MarkdownExamples.from_parent(self, name="examples", blocks=blocks)


class MarkdownExamples(pytest.Item):
    def __init__(self, *, blocks: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.blocks = blocks
        self.failed_line = 0

    def runtest(self) -> None:
        # Python 3.13 warns when a sqlite3 connection is garbage-collected unclosed. Collect
        # what earlier tests in this worker left behind first, so such a warning is not
        # reported against whichever documentation page happens to trigger the collection.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        namespace: dict[str, Any] = {"__name__": f"markdown:{self.path.name}"}
        previous = os.getcwd()
        with tempfile.TemporaryDirectory(prefix="crmcore-docs-") as workdir:
            os.chdir(workdir)
            try:
                for line, source in self.blocks:
                    self.failed_line = line
                    code = compile("\n" * (line - 1) + source, str(self.path), "exec")
                    exec(code, namespace)  # noqa: S102 - running our own documentation examples
            finally:
                os.chdir(previous)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return (
            f"{self.path}:{self.failed_line}: the example starting here failed\n"
            f"{excinfo.getrepr(style='short')}"
        )

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name} examples ({len(self.blocks)} blocks)"
