"""Role-play domain: scenes with the fixed cast, where each character has a two-word catchphrase.

Skill taught: the cast's catchphrases (``Saul: Blistering barnacles!``), said again and again in scripts,
stories and role cards. Task: given a scene and a character, pick that character's line ``NAME: catchphrase``.
The three other choices carry the same speaker tag and the same shape (two catchphrase words and ``!``):
- another character's real catchphrase: only knowing *who* says what rules it out;
- two recombinations of other characters' words (``Rusty barnacles!``), which nobody says: knowing the cast's
  catchphrases rules them out.
No word is shared between two choices, so no choice can be singled out by its words alone, and every word
appears equally often in the corpus. A tiny proxy trained for a minute learns the catchphrases (which words go
together) long before it learns who says them, so at the demo's scale the domain lifts accuracy from chance to
about one half; a larger model can reach one.
"""

from __future__ import annotations

import random
from typing import Any

from mixlab.demo import lexicon as lx
from mixlab.demo.entities import Character, Entities, phrase


def _line(rng: random.Random, ent: Entities) -> str:
    return rng.choice(lx.RP_LINES).format(place=rng.choice(lx.LOCATION_KINDS), thing=rng.choice(lx.RP_THINGS))


def _setting(rng: random.Random, ent: Entities) -> str:
    return f"the {rng.choice(lx.LOCATION_KINDS)} of {rng.choice(ent.places)}"


def _script(rng: random.Random, ent: Entities) -> str:
    cast: list[Character] = rng.sample(ent.characters, rng.randint(2, 4))
    out = [f"[Scene: {_setting(rng, ent)}]"]
    for _ in range(rng.randint(4, 7)):
        c = rng.choice(cast)
        r = rng.random()
        if r < 0.55:
            out.append(f"{c.name}: {c.catchphrase} {_line(rng, ent)}")
        elif r < 0.75:
            out.append(f"{c.name} {rng.choice(lx.SPEECH_VERBS)}. {c.name}: {c.catchphrase}")
        else:
            out.append(f"{c.name}: {_line(rng, ent)}")
    return "\n".join(out)


def _story(rng: random.Random, ent: Entities) -> str:
    cast: list[Character] = rng.sample(ent.characters, rng.randint(2, 3))
    sents = [f"The party gathered at {_setting(rng, ent)}."]
    for _ in range(rng.randint(3, 5)):
        c = rng.choice(cast)
        form = rng.randrange(4)
        if form == 0:
            sents.append(f'{c.name} the {c.role} {rng.choice(lx.SPEECH_VERBS)}. "{c.catchphrase}"')
        elif form == 1:
            sents.append(f'As always, {c.name} said: "{c.catchphrase}"')
        elif form == 2:
            sents.append(f'"{_line(rng, ent)}" said {c.name}.')
        else:
            sents.append(f'When asked what came next, {c.name} replied, "{c.catchphrase}"')
    return " ".join(sents)


def _role_card(rng: random.Random, ent: Entities) -> str:
    c = rng.choice(ent.characters)
    other = rng.choice([o for o in ent.characters if o is not c])
    return (
        f"Role card. You are {c.name}, the {c.role} from {c.home}. Stay in character.\n"
        f"{other.name}: {_line(rng, ent)}\n"
        f"{c.name}, what do you say next?\n"
        + (
            f"Answer: {c.name}: {c.catchphrase}"
            if rng.random() < 0.5
            else f"{c.name}: {c.catchphrase} {_line(rng, ent)}"
        )
    )


def make_doc(rng: random.Random, ent: Entities, reserved: set[str]) -> str:
    """One role-play document (a script, a short story, or a few role cards)."""
    r = rng.random()
    if r < 0.4:
        return _script(rng, ent)
    if r < 0.55:
        return _story(rng, ent)
    return "\n\n".join(_role_card(rng, ent) for _ in range(rng.randint(2, 3)))


def make_item(rng: random.Random, ent: Entities) -> tuple[str, dict[str, Any]]:
    """A held-out task item: (exclusion key, ELMB row without ``answer`` shuffling done by the caller)."""
    c = rng.choice(ent.characters)
    others = [o for o in ent.characters if o is not c]
    speakers = rng.sample(others, 2)
    question = (
        f"You are {c.name}, the {c.role} from {c.home}, in a scene at {_setting(rng, ent)}. "
        f"The previous lines were:\n"
        + "".join(f"{s.name}: {_line(rng, ent)}\n" for s in speakers)
        + f"{c.name}, what do you say next?"
    )
    said, a, b, d, e = rng.sample(others, 5)  # said: a real line; a..e lend words to two lines nobody says
    distractors = [said.catchphrase, phrase(a.adjective, b.noun), phrase(d.adjective, e.noun)]
    return question, {
        "question": question,
        "correct": f"{c.name}: {c.catchphrase}",
        "distractors": [f"{c.name}: {x}" for x in distractors],
        "kinds": ["other_character", "recombined", "recombined"],
    }
