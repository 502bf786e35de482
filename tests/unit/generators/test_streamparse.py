"""The incremental scan of a contract being written: each file entry once complete, whatever the chunking."""

from __future__ import annotations

import json
import random

from daemon.generators.streamparse import FileScanner

CONTRACT = {
    "name": "a{b}", "slug": 'x"[', "metadata": {"files": [{"path": "not-a-file", "content": "meta"}]},
    "templateFiles": [{"path": "package.json", "content": '{"scripts": {"build": "vite build"}}'}],
    "files": [{"path": "src/a.js", "content": '}\\"{ ]["'}, {"path": "src/é.txt", "content": "é\n"},
              {"path": "skipped", "content": 3}],
}


def test_entries_come_once_complete_in_order_for_any_chunking() -> None:
    text = "Here is the project:\n```json\n" + json.dumps(CONTRACT, indent=1) + "\n```\n{and} more {prose}"
    rnd = random.Random(7)
    for _ in range(100):
        scanner, got, i = FileScanner(), [], 0
        while i < len(text):
            n = rnd.randint(1, 9)
            got += scanner.feed(text[i:i + n])
            i += n
        assert [(g["path"], g["content"]) for g in got] == [
            ("package.json", '{"scripts": {"build": "vite build"}}'), ("src/a.js", '}\\"{ ]["'), ("src/é.txt", "é\n")]


def test_an_entry_is_handed_over_with_its_closing_brace() -> None:
    text = json.dumps(CONTRACT)
    entry = json.dumps(CONTRACT["templateFiles"][0])
    end = text.index(entry) + len(entry) - 1  # the entry's closing brace
    scanner = FileScanner()
    assert scanner.feed(text[:end]) == []
    assert [e["path"] for e in scanner.feed(text[end:end + 1])] == ["package.json"]
