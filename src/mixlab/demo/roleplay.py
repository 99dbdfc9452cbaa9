"""Role-play domain: scenes with the fixed cast, where each character speaks with their own catchphrase.

Skill taught: which catchphrase belongs to which character. Task: given a scene and a character, pick that
character's line ``NAME: catchphrase`` among lines with the same speaker tag but the catchphrases of three other
characters (same format, similar length), the way a transcript continues.
"""

from __future__ import annotations

import random
from typing import Any

from mixlab.demo import lexicon as lx
from mixlab.demo.entities import Character, Entities


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
        if r < 0.5:
            out.append(f"{c.name}: {c.catchphrase} {_line(rng, ent)}")
        elif r < 0.7:
            out.append(f'{c.name} {rng.choice(lx.SPEECH_VERBS)} and says, "{c.catchphrase}"')
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
    """One role-play document (a script, a short story, or a role card)."""
    r = rng.random()
    if r < 0.35:
        return _script(rng, ent)
    if r < 0.5:
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
    distractors = [f"{c.name}: {o.catchphrase}" for o in rng.sample(others, 3)]
    return question, {
        "question": question,
        "correct": f"{c.name}: {c.catchphrase}",
        "distractors": distractors,
    }
