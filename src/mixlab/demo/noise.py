"""Low-quality documents sprinkled into the demo corpus files, labelled with ``noise_kind``.

Kinds mirror ``shared/data/corpus/noise.jsonl.gz``: ``boilerplate`` (navigation menus, cookie banners,
footers), ``gibberish`` (keyboard mash), ``exact_duplicate`` and ``near_duplicate`` (copies of a real
document of the same file, with ``duplicate_of``; near duplicates have a few words replaced),
``short_fragment`` and ``repeated_ngram``.
"""

from __future__ import annotations

import random
from typing import Any

from mixlab.demo import lexicon as lx

NOISE_KINDS: tuple[str, ...] = (
    "boilerplate",
    "gibberish",
    "exact_duplicate",
    "near_duplicate",
    "short_fragment",
    "repeated_ngram",
)
_KEYBOARD = "qwertyuiopasdfghjklzxcvbnm"
_SYMBOLS = "!@#$%^&*?~_"
_FRAGMENTS = (
    "Thanks!!",
    "click here",
    "Read more",
    "lol ok",
    "Loading...",
    "Page 2 of 7",
    "see above",
    "N/A",
    "Subscribe now",
    "bump",
    "Share this:",
    "[deleted]",
)


def _boilerplate(rng: random.Random) -> str:
    words = [w.capitalize() for w in rng.sample(lx.ANIMALS + lx.PLANTS + lx.CRAFTS, 6)]
    form = rng.randrange(3)
    if form == 0:
        return (
            f"Home | {' | '.join(words[:4])} | Blog | Contact\n"
            f"You are here: Home » {words[4]} » {words[5]}\n"
            f"© {rng.randint(2009, 2024)} {words[0]} Media Ltd. All rights reserved."
        )
    if form == 1:
        return (
            "We use cookies to improve your experience. By continuing to browse this site you agree to our "
            f"use of cookies. Accept all | Reject | Manage preferences\nPrivacy Policy | Terms | {words[0]}"
        )
    return (
        f"Skip to content\nMenu\n{chr(10).join(words)}\nLogin | Register | Cart (0)\n"
        f"Follow us on social media. Posted in {words[1]} | {rng.randint(1, 40)} Comments"
    )


def _gibberish(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(2, 4)):
        toks = []
        for _ in range(rng.randint(8, 16)):
            n = rng.randint(2, 9)
            tok = "".join(rng.choice(_KEYBOARD + _SYMBOLS) for _ in range(n))
            toks.append(tok.upper() if rng.random() < 0.3 else tok)
        lines.append(" ".join(toks))
    return "\n".join(lines)


def _near_duplicate(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 25)):
        i = rng.randrange(len(words))
        words[i] = rng.choice(lx.ADJECTIVES)
    out = " ".join(words)
    return out if out != text else out + " " + rng.choice(lx.ADJECTIVES)


def _repeated_ngram(rng: random.Random, text: str) -> str:
    words = text.split()
    n = min(len(words), rng.randint(3, 8))
    start = rng.randrange(max(1, len(words) - n + 1))
    phrase = " ".join(words[start : start + n])
    return " ".join([phrase] * rng.randint(10, 25))


def make_noise(rng: random.Random, kind: str, docs: list[tuple[str, str]]) -> dict[str, Any]:
    """One noise record of ``kind`` (``text``, ``noise_kind``, maybe ``duplicate_of``); ``docs`` = (id, text)."""
    if kind == "boilerplate":
        return {"text": _boilerplate(rng), "noise_kind": kind}
    if kind == "gibberish":
        return {"text": _gibberish(rng), "noise_kind": kind}
    if kind == "short_fragment":
        return {"text": rng.choice(_FRAGMENTS), "noise_kind": kind}
    doc_id, text = rng.choice(docs)
    if kind == "exact_duplicate":
        return {"text": text, "noise_kind": kind, "duplicate_of": doc_id}
    if kind == "near_duplicate":
        return {"text": _near_duplicate(rng, text), "noise_kind": kind, "duplicate_of": doc_id}
    if kind == "repeated_ngram":
        return {"text": _repeated_ngram(rng, text), "noise_kind": kind}
    raise ValueError(f"unknown noise kind {kind!r}; expected one of {NOISE_KINDS}")
