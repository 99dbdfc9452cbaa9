"""Code domain: small Python functions and classes built from templates (no task tests it)."""

from __future__ import annotations

import random

from mixlab.demo.entities import Entities

_NOUNS = ("item", "record", "node", "token", "row", "entry", "packet", "user", "order", "event")
_VERBS = ("process", "filter", "collect", "merge", "validate", "normalize", "index", "group", "parse")


def _function(rng: random.Random) -> str:
    noun, verb = rng.choice(_NOUNS), rng.choice(_VERBS)
    name = f"{verb}_{noun}s"
    form = rng.randrange(4)
    if form == 0:
        body = (
            f"    result = []\n    for {noun} in {noun}s:\n        if {noun} is not None:\n"
            f"            result.append({noun})\n    return result\n"
        )
    elif form == 1:
        body = (
            f"    counts = {{}}\n    for {noun} in {noun}s:\n        key = str({noun})\n"
            f"        counts[key] = counts.get(key, 0) + 1\n    return counts\n"
        )
    elif form == 2:
        body = f"    return sorted({noun}s, key=len, reverse={rng.choice(['True', 'False'])})\n"
    else:
        body = (
            f"    total = 0\n    for {noun} in {noun}s:\n        total += len({noun})\n"
            f"    return total / max(len({noun}s), 1)\n"
        )
    doc = f'    """{verb.capitalize()} a list of {noun}s."""\n'
    return f"def {name}({noun}s):\n{doc}{body}"


def _class(rng: random.Random) -> str:
    noun = rng.choice(_NOUNS)
    cls = noun.capitalize() + rng.choice(("Store", "Queue", "Cache", "Registry"))
    return (
        f'class {cls}:\n    """Keep {noun}s in memory."""\n\n'
        f"    def __init__(self):\n        self._{noun}s = []\n\n"
        f"    def add(self, {noun}):\n        self._{noun}s.append({noun})\n\n"
        f"    def __len__(self):\n        return len(self._{noun}s)\n"
    )


def make_doc(rng: random.Random, ent: Entities, reserved: set[str]) -> str:
    """A module of 1-2 functions/classes."""
    parts = [f'"""Utilities for {rng.choice(_NOUNS)} handling."""', "import os\nimport sys"]
    for _ in range(rng.randint(1, 2)):
        parts.append(_class(rng) if rng.random() < 0.3 else _function(rng))
    return "\n\n".join(parts) + "\n"
