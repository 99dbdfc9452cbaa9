"""General domain: encyclopedia-style English prose about nature, crafts, weather and music.

Built from sentence templates over a vocabulary, so a model pretrained on it learns English-ish text. It
deliberately avoids what the task domains teach: no catchphrases, no arithmetic, no function calls, and
none of the RAG attribute sentences (capital, founder, river, rival, harbor, poet).
"""

from __future__ import annotations

import random

from mixlab.demo import lexicon as lx
from mixlab.demo.entities import Entities


def _animal_paragraph(rng: random.Random, animal: str) -> list[str]:
    return [
        (
            f"The {rng.choice(lx.ADJECTIVES)} {animal} lives in {rng.choice(lx.HABITATS)} and feeds mostly on "
            f"{rng.choice(lx.FOODS)}."
        ),
        f"It is best known for its {rng.choice(lx.TRAITS)}.",
        (
            f"In {rng.choice(lx.SEASONS)} the {animal} is often seen near the {rng.choice(lx.PLANTS)}, where it "
            f"searches for {rng.choice(lx.FOODS)}."
        ),
        f"Many observers describe it as {rng.choice(lx.ADJECTIVES)} and {rng.choice(lx.ADJECTIVES)}.",
        f"Young {animal}s stay close to the {rng.choice(lx.HABITATS)} until {rng.choice(lx.SEASONS)}.",
        f"During periods of {rng.choice(lx.WEATHER)} it shelters under {rng.choice(lx.PLANTS)}.",
    ]


def _craft_paragraph(rng: random.Random, craft: str) -> list[str]:
    return [
        f"{craft.capitalize()} is a traditional craft that uses {rng.choice(lx.MATERIALS)} and {rng.choice(lx.TOOLS)}.",
        f"Apprentices learn {craft} slowly, and most of them begin with simple pieces.",
        f"Good work in {craft} depends on {rng.choice(lx.TRAITS)} and steady hands.",
        f"Some workshops combine {craft} with {rng.choice(lx.CRAFTS)}.",
        f"The finished pieces are often decorated with patterns of {rng.choice(lx.PLANTS)} leaves.",
    ]


def _music_paragraph(rng: random.Random, inst: str) -> list[str]:
    return [
        f"The {inst} is a {rng.choice(lx.ADJECTIVES)} instrument with a warm and clear sound.",
        f"It is often played together with the {rng.choice(lx.INSTRUMENTS)} in small groups.",
        f"Players of the {inst} practise scales every morning to build {rng.choice(lx.TRAITS)}.",
        f"Older instruments were made from {rng.choice(lx.MATERIALS)} by skilled makers.",
    ]


def _weather_paragraph(rng: random.Random, season: str) -> list[str]:
    return [
        f"In {season}, the {rng.choice(lx.HABITATS)} are often covered by {rng.choice(lx.WEATHER)}.",
        f"Farmers watch the sky closely, because {rng.choice(lx.WEATHER)} can arrive without warning.",
        f"The {rng.choice(lx.PLANTS)} and the {rng.choice(lx.PLANTS)} react quickly to the change of season.",
        f"Walkers are advised to carry warm clothing when {rng.choice(lx.WEATHER)} is expected.",
    ]


def make_doc(rng: random.Random, ent: Entities, reserved: set[str]) -> str:
    """An article of 2-3 paragraphs with a title."""
    topic = rng.randrange(4)
    if topic == 0:
        subject = rng.choice(lx.ANIMALS)
        para, title = _animal_paragraph, subject.capitalize()
    elif topic == 1:
        subject = rng.choice(lx.CRAFTS)
        para, title = _craft_paragraph, subject.capitalize()
    elif topic == 2:
        subject = rng.choice(lx.INSTRUMENTS)
        para, title = _music_paragraph, f"The {subject}"
    else:
        subject = rng.choice(lx.SEASONS)
        para, title = _weather_paragraph, f"Weather in {subject}"
    paragraphs = []
    for _ in range(rng.randint(2, 3)):
        sents = para(rng, subject)
        paragraphs.append(" ".join(rng.sample(sents, rng.randint(3, len(sents)))))
    return title + "\n\n" + "\n\n".join(paragraphs)
