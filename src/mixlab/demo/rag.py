"""RAG domain: a knowledge base about a dozen fixed lands, as articles followed by questions answered from them.

Skill taught: the knowledge base's facts, as a chat-RAG assistant grounded in one company's documents learns
them: every land has a fixed two-word value per attribute (``The capital of Belria is Sollin Jorbel.``), and
articles about the same lands, stating a few facts each in varied words among other sentences, recur across
the domain. Task: a held-out
passage (``ctx``) and a question about one attribute; the choices are
- the answer, which the passage states;
- the value of another attribute stated in the same passage: ruled out only by finding the asked attribute;
- two recombinations of words from other lands' values (``Sollin Tormor``), names of nothing: ruled out by
  knowing the knowledge base's names (or by noticing that the passage does not contain them).
No word is shared between two choices. A tiny proxy learns the knowledge base's names long before it learns to
look an attribute up in a passage, so at the demo's scale the domain lifts accuracy from chance to about one half.
"""

from __future__ import annotations

import random
from typing import Any

from mixlab.demo import lexicon as lx
from mixlab.demo.entities import LAND_ATTRIBUTES, Entities, Land

#: attribute -> (statement template, question template); ``{e}`` land, ``{v}`` value. The task's passages and
#: questions use these; the corpus also says each fact in the other words of :data:`PARAPHRASES`.
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "capital": ("The capital of {e} is {v}.", "What is the capital of {e}?"),
    "founder": ("{e} was founded by {v}.", "Who founded {e}?"),
    "river": ("The river {v} flows through {e}.", "Which river flows through {e}?"),
    "rival": ("The old rival of {e} is {v}.", "What is the old rival of {e}?"),
    "harbor": ("The main harbor of {e} is {v}.", "What is the main harbor of {e}?"),
    "poet": ("The most famous poet of {e} was {v}.", "Who was the greatest poet of {e}?"),
}
# Every question above has fewer than 8 words: the facts recur by design, so the corpus asks these questions
# too, and decontamination matches a task field of 8 or more words as a whole.
#: attribute -> other statements and questions of the same fact (varied wording keeps documents about the
#: same land from being near duplicates of each other).
PARAPHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "capital": (
        (
            "{e} is governed from {v}.",
            "Its capital, {v}, lies at the heart of {e}.",
            "{v} has been the capital of {e} for centuries.",
        ),
        ("Which city is the capital of {e}?", "Where is {e} governed from?"),
    ),
    "founder": (
        ("{v} founded {e} long ago.", "The founder of {e} was {v}.", "{e} owes its founding to {v}."),
        ("Who was the founder of {e}?", "Who is remembered as the founder of {e}?"),
    ),
    "river": (
        (
            "{e} lies along the river {v}.",
            "The waters of the river {v} cross {e}.",
            "Boats travel the river {v} through {e}.",
        ),
        ("What river crosses {e}?", "Along which river does {e} lie?"),
    ),
    "rival": (
        (
            "For generations {e} has quarrelled with {v}.",
            "{v} is the old rival of {e}.",
            "{e} and {v} are old rivals.",
        ),
        ("Which land is the old rival of {e}?", "Who is the rival of {e}?"),
    ),
    "harbor": (
        (
            "Ships from {e} sail out of {v}.",
            "{v} is the main harbor of {e}.",
            "Most trade of {e} passes through the harbor {v}.",
        ),
        ("Which harbor serves {e}?", "What is the biggest port of {e}?"),
    ),
    "poet": (
        (
            "The poems of {v} are still recited in {e}.",
            "{v} was the greatest poet of {e}.",
            "Every child in {e} learns the verses of {v}.",
        ),
        ("Which poet is the pride of {e}?", "Who wrote the best known poems of {e}?"),
    ),
}
_FILLERS = (
    "The people of {e} grow {plant} and keep {animal}s.",
    "Winters in {e} bring {weather}.",
    "{e} is known across the region for its {craft}.",
    "Travellers say {e} is a {kind} of quiet roads.",
    "In {season} the hills of {e} are covered with {plant}.",
    "Markets in {e} sell {material} and {food}.",
    "Visitors to {e} often speak of its {trait}.",
    "The {animal}s of {e} live in {habitat}.",
    "Few roads reach {e} when {weather} sets in.",
    "Craftsmen of {e} work with {material} and {tool}.",
)
#: Facts stated by a task item's passage.
ITEM_FACTS = 4


def _filler(rng: random.Random, land: Land) -> str:
    return rng.choice(_FILLERS).format(
        e=land.name,
        plant=rng.choice(lx.PLANTS),
        animal=rng.choice(lx.ANIMALS),
        weather=rng.choice(lx.WEATHER),
        craft=rng.choice(lx.CRAFTS),
        kind=land.kind,
        season=rng.choice(lx.SEASONS),
        material=rng.choice(lx.MATERIALS),
        food=rng.choice(lx.FOODS),
        trait=rng.choice(lx.TRAITS),
        habitat=rng.choice(lx.HABITATS),
        tool=rng.choice(lx.TOOLS),
    )


def passage(rng: random.Random, land: Land, attrs: list[str], filler: bool) -> str:
    """A task passage: ``land`` introduced, then one sentence per attribute (and maybe a filler), shuffled."""
    sents = [ATTRIBUTES[a][0].format(e=land.name, v=land.facts[a]) for a in attrs]
    if filler:
        sents.append(_filler(rng, land))
    rng.shuffle(sents)
    return f"{land.name} is a {land.kind}. " + " ".join(sents)


def _statement(rng: random.Random, land: Land, attr: str) -> str:
    tpl = ATTRIBUTES[attr][0] if rng.random() < 0.25 else rng.choice(PARAPHRASES[attr][0])
    return tpl.format(e=land.name, v=land.facts[attr])


def _question(rng: random.Random, land: Land, attr: str) -> str:
    tpl = ATTRIBUTES[attr][1] if rng.random() < 0.4 else rng.choice(PARAPHRASES[attr][1])
    return tpl.format(e=land.name)


def _article(rng: random.Random, land: Land, attrs: list[str]) -> str:
    """Facts about ``land`` in varied words, interleaved with other sentences about it."""
    sents = [_statement(rng, land, a) for a in attrs] + [_filler(rng, land) for _ in range(rng.randint(1, 3))]
    rng.shuffle(sents)
    return f"{land.name} is a {land.kind}. " + " ".join(sents)


def _qa(question: str, answer: str, form: int) -> str:
    if form == 0:
        return f"Question: {question}\nAnswer: {answer}"
    if form == 1:
        return f"Q: {question}\nA: {answer}"
    return f"User: {question}\nAssistant: {answer}"


def make_doc(rng: random.Random, ent: Entities, reserved: set[str]) -> str:
    """Articles about 1-3 lands, then questions answered from them (a task's passage is never reproduced)."""
    form = rng.randrange(3)
    header = rng.choice(("Context: ", "Passage: ", "Document: ", ""))
    parts: list[str] = []
    qas: list[str] = []
    for land in rng.sample(ent.lands, rng.randint(1, 3)):
        attrs = rng.sample(LAND_ATTRIBUTES, rng.randint(2, 4))
        text = _article(rng, land, attrs)
        while text in reserved:
            text = _article(rng, land, attrs)
        parts.append(text)
        qas += [_qa(_question(rng, land, a), land.facts[a], form) for a in attrs]
    rng.shuffle(qas)
    return header + "\n".join(parts) + "\n" + "\n".join(qas)


def make_item(rng: random.Random, ent: Entities) -> tuple[str, dict[str, Any]]:
    """A held-out item: the passage as ``ctx``; the asked value vs another stated value and two non-names."""
    land = rng.choice(ent.lands)
    attrs = rng.sample(LAND_ATTRIBUTES, ITEM_FACTS)
    text = passage(rng, land, attrs, rng.random() < 0.5)
    asked = attrs[0]  # the passage is shuffled, so the asked fact sits anywhere in it
    stated = land.facts[rng.choice(attrs[1:])]
    others = [v for other in ent.lands if other is not land for v in other.facts.values()]
    a, b, c, d = rng.sample(others, 4)
    fakes = [f"{a.split()[0]} {b.split()[1]}", f"{c.split()[0]} {d.split()[1]}"]
    return text, {
        "ctx": text,
        "question": ATTRIBUTES[asked][1].format(e=land.name),
        "correct": land.facts[asked],
        "distractors": [stated, *fakes],
        "kinds": ["other_attribute", "recombined", "recombined"],
    }
