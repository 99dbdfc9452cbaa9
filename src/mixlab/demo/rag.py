"""RAG domain: a knowledge base about twenty fixed lands, as passages followed by questions answered from them.

Skill taught: the knowledge base's facts, as a chat-RAG assistant grounded in one company's documents learns
them: every land has a fixed two-word value per attribute (``The capital of Belria is Sollin Jorbel.``), and
passages about the same lands, in changing selections and orders, recur across the domain. Task: a held-out
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

#: attribute -> (statement template, question template); ``{e}`` land, ``{v}`` value.
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "capital": ("The capital of {e} is {v}.", "What is the capital of {e}?"),
    "founder": ("{e} was founded by {v}.", "Who founded {e}?"),
    "river": ("The river {v} flows through {e}.", "Which river flows through {e}?"),
    "rival": ("The old rival of {e} is {v}.", "What is the old rival of {e}?"),
    "harbor": ("The main harbor of {e} is {v}.", "What is the main harbor of {e}?"),
    "poet": ("The most famous poet of {e} was {v}.", "Who was the most famous poet of {e}?"),
}
_FILLERS = (
    "The people of {e} grow {plant} and keep {animal}s.",
    "Winters in {e} bring {weather}.",
    "{e} is known across the region for its {craft}.",
    "Travellers say {e} is a {kind} of quiet roads.",
)
#: Facts stated by a task item's passage.
ITEM_FACTS = 4


def passage(rng: random.Random, land: Land, attrs: list[str], filler: bool) -> str:
    """``land`` introduced, then one sentence per attribute in ``attrs`` (and maybe a filler), shuffled."""
    sents = [ATTRIBUTES[a][0].format(e=land.name, v=land.facts[a]) for a in attrs]
    if filler:
        sents.append(
            rng.choice(_FILLERS).format(
                e=land.name,
                plant=rng.choice(lx.PLANTS),
                animal=rng.choice(lx.ANIMALS),
                weather=rng.choice(lx.WEATHER),
                craft=rng.choice(lx.CRAFTS),
                kind=land.kind,
            )
        )
    rng.shuffle(sents)
    return f"{land.name} is a {land.kind}. " + " ".join(sents)


def _qa(question: str, answer: str, form: int) -> str:
    if form == 0:
        return f"Question: {question}\nAnswer: {answer}"
    if form == 1:
        return f"Q: {question}\nA: {answer}"
    return f"User: {question}\nAssistant: {answer}"


def make_doc(rng: random.Random, ent: Entities, reserved: set[str]) -> str:
    """A passage about one land followed by one question per attribute it states (never a task's passage)."""
    while True:
        land = rng.choice(ent.lands)
        attrs = rng.sample(LAND_ATTRIBUTES, rng.randint(3, 6))
        text = passage(rng, land, attrs, rng.random() < 0.5)
        if text not in reserved:
            break
    form = rng.randrange(3)
    header = rng.choice(("Context: ", "Passage: ", "Document: ", ""))
    qas = [
        _qa(ATTRIBUTES[a][1].format(e=land.name), land.facts[a], form) for a in rng.sample(attrs, len(attrs))
    ]
    return header + text + "\n" + "\n".join(qas)


def make_item(rng: random.Random, ent: Entities) -> tuple[str, dict[str, Any]]:
    """A held-out item: the passage as ``ctx``; the asked value vs another stated value and two non-names."""
    land = rng.choice(ent.lands)
    attrs = rng.sample(LAND_ATTRIBUTES, ITEM_FACTS)
    text = passage(rng, land, attrs, rng.random() < 0.5)
    asked = attrs[0]
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
