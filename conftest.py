"""Collects the Python examples in README.md and docs/*.md as tests, so the docs cannot lie.

Every fenced block that opens with three backticks and ``python`` is one test item; the blocks
of one file run in order in one shared namespace (later examples build on earlier ones), in a
temporary working directory. A block fenced as ``python skip`` (an excerpt that cannot run on
its own) is not collected.
"""

from __future__ import annotations

import os
import re
import tempfile
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
        namespace: dict[str, Any] = {"__name__": f"markdown:{self.path.name}"}
        workdir = {"path": None}
        for index, match in enumerate(_BLOCK.finditer(text)):
            line = text.count("\n", 0, match.start()) + 2
            yield MarkdownExample.from_parent(
                self,
                name=f"example-{index + 1}-line-{line}",
                source=match.group(1),
                line=line,
                namespace=namespace,
                workdir=workdir,
            )


class MarkdownExample(pytest.Item):
    def __init__(
        self,
        *,
        source: str,
        line: int,
        namespace: dict[str, Any],
        workdir: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.line = line
        self.namespace = namespace
        self.workdir = workdir
        # All examples of one file share state: keep them on one xdist worker, in order.
        self.add_marker(pytest.mark.xdist_group(str(self.path)))

    def runtest(self) -> None:
        if self.workdir["path"] is None:
            self.workdir["path"] = tempfile.mkdtemp(prefix="crmcore-docs-")
        code = compile("\n" * (self.line - 1) + self.source, str(self.path), "exec")
        previous = os.getcwd()
        os.chdir(self.workdir["path"])
        try:
            exec(code, self.namespace)  # noqa: S102 - running our own documentation examples
        finally:
            os.chdir(previous)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return f"{self.path}:{self.line}: example failed\n{excinfo.getrepr(style='short')}"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.line - 1, self.name
