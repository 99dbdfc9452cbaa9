"""RAG domain: short passages about fictional lands followed by questions answered from the passage.

Skill taught: find the sentence about the asked attribute and copy its name. Every passage is about a freshly
drawn entity, so answers cannot be memorised. Task: a held-out passage and question; choices are the right
span, two other names from the same passage (other attributes) and one name absent from it.
"""

from __future__ import annotations

import random
from typing import Any

from mixlab.demo import lexicon as lx
from mixlab.demo.entities import Entities

#: attribute -> (statement template, question template); ``{e}`` entity, ``{v}`` value.
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "capital": ("The capital of {e} is {v}.", "What is the capital of {e}?"),
    "founder": ("{e} was founded by {v}.", "Who founded {e}?"),
    "river": ("The river {v} flows through {e}.", "Which river flows through {e}?"),
    "rival": ("The old rival of {e} is {v}.", "What is the old rival of {e}?"),
    "harbor": ("The main harbor of {e} is {v}.", "What is the main harbor of {e}?"),
    "poet": ("The most famous poet of {e} was {v}.", "Who was the most famous poet of {e}?"),
}
_KINDS = ("kingdom", "island", "city-state", "valley", "republic", "duchy")
_FILLERS = (
    "The people of {e} grow {plant} and keep {animal}s.",
    "Winters in {e} bring {weather}.",
    "{e} is known across the region for its {craft}.",
    "Travellers say {e} is a {kind} of quiet roads.",
)


def draw_passage(rng: random.Random) -> tuple[str, dict[str, str], str]:
    """(entity name, attribute -> value for 4-6 attributes, passage text)."""
    entity = lx.make_name(rng, 2, 3)
    attrs = rng.sample(list(ATTRIBUTES), rng.randint(4, 6))
    values = lx.unique_names(rng, len(attrs) + 1, 2, 3)
    values = [v for v in values if v != entity][: len(attrs)]
    facts = dict(zip(attrs, values, strict=True))
    kind = rng.choice(_KINDS)
    sents = [ATTRIBUTES[a][0].format(e=entity, v=v) for a, v in facts.items()]
    for _ in range(rng.randint(0, 1)):
        sents.append(
            rng.choice(_FILLERS).format(
                e=entity,
                plant=rng.choice(lx.PLANTS),
                animal=rng.choice(lx.ANIMALS),
                weather=rng.choice(lx.WEATHER),
                craft=rng.choice(lx.CRAFTS),
                kind=kind,
            )
        )
    rng.shuffle(sents)
    text = f"{entity} is a {kind}. " + " ".join(sents)
    return entity, facts, text


def _qa(rng: random.Random, question: str, answer: str, form: int) -> str:
    if form == 0:
        return f"Question: {question}\nAnswer: {answer}"
    if form == 1:
        return f"Q: {question}\nA: {answer}"
    return f"User: {question}\nAssistant: {answer}"


def make_doc(rng: random.Random, ent: Entities, reserved: set[str]) -> str:
    """A passage followed by one question per attribute it states, answered from it."""
    entity, facts, text = draw_passage(rng)
    while entity in reserved:
        entity, facts, text = draw_passage(rng)
    form = rng.randrange(3)
    header = rng.choice(("Context: ", "Passage: ", "Document: ", ""))
    asked = rng.sample(list(facts), len(facts))
    qas = [_qa(rng, ATTRIBUTES[a][1].format(e=entity), facts[a], form) for a in asked]
    return header + text + "\n" + "\n".join(qas)


def make_item(rng: random.Random, ent: Entities) -> tuple[str, dict[str, Any]]:
    """A held-out item: passage as ``ctx``; the asked span vs two other spans of the passage and one absent."""
    entity, facts, text = draw_passage(rng)
    attr = rng.choice(list(facts))
    present = [v for a, v in facts.items() if a != attr]
    absent = lx.make_name(rng, 2, 3)
    while absent in text:
        absent = lx.make_name(rng, 2, 3)
    distractors = rng.sample(present, 2) + [absent]
    question = ATTRIBUTES[attr][1].format(e=entity)
    return entity, {"ctx": text, "question": question, "correct": facts[attr], "distractors": distractors}
