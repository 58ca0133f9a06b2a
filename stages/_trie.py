"""Many strings as one regex: a character trie turned into nested alternations, so the regex engine
walks shared prefixes once and tries the longest entry first at each position."""
from __future__ import annotations

import re
from typing import Callable


def char_trie(entries: list[str]) -> dict:
    """Nested dicts, one level per character; the key "" marks the end of an entry."""
    root: dict = {}
    for entry in entries:
        node = root
        for char in entry:
            node = node.setdefault(char, {})
        node[""] = {}
    return root


def trie_pattern(entries: list[str], char_pattern: Callable[[str], str] = re.escape,
                 end_pattern: Callable[[str], str] = lambda last: "") -> str:
    """The regex source matching any entry. `char_pattern` gives each character's pattern;
    `end_pattern(last character)` is appended where an entry ends (a word boundary, say)."""
    def pattern(node: dict, last: str) -> str:
        branches = [char_pattern(char) + pattern(child, char) for char, child in sorted(node.items()) if char]
        if "" in node:
            branches.append(end_pattern(last))
        return "(?:" + "|".join(branches) + ")" if len(branches) > 1 else (branches[0] if branches else "")

    return pattern(char_trie(entries), "")
