"""Fixed word lists and a pronounceable-name maker for the demo world.

Everything the generators write is built from these lists plus a seeded ``random.Random``, so the world is
reproducible without any download. The lists are deliberately disjoint between domains where it matters:
general prose never uses the RAG attribute words (``capital``, ``founded``, ...), the function-calling keys,
the characters' catchphrase openers, or arithmetic.
"""

from __future__ import annotations

import random

#: Syllables for fictional proper names (characters, places, RAG entities).
SYLLABLES: tuple[str, ...] = (
    "ka",
    "ro",
    "mel",
    "tan",
    "vi",
    "dor",
    "sa",
    "lin",
    "bra",
    "ek",
    "ul",
    "mor",
    "thi",
    "zan",
    "qua",
    "fen",
    "gil",
    "os",
    "ria",
    "vor",
    "bel",
    "cas",
    "dru",
    "el",
    "har",
    "is",
    "jor",
    "kel",
    "lum",
    "nor",
    "pel",
    "rin",
    "sol",
    "tor",
    "ur",
    "val",
    "wen",
    "yr",
    "zel",
    "ab",
    "om",
    "ter",
    "gan",
    "mi",
    "shen",
)


def make_name(rng: random.Random, min_syl: int = 2, max_syl: int = 3) -> str:
    """A capitalised pronounceable fictional name of ``min_syl``..``max_syl`` syllables."""
    n = rng.randint(min_syl, max_syl)
    return "".join(rng.choice(SYLLABLES) for _ in range(n)).capitalize()


def unique_names(rng: random.Random, n: int, min_syl: int = 2, max_syl: int = 3) -> list[str]:
    """``n`` distinct names (drawn until distinct)."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        name = make_name(rng, min_syl, max_syl)
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


# ----------------------------------------------------------------------------------------------- roleplay
#: Distinct first words of the characters' catchphrases (``Blistering barnacles!``): one per character.
CATCHPHRASE_ADJECTIVES: tuple[str, ...] = (
    "Blistering",
    "Rusty",
    "Howling",
    "Thundering",
    "Sizzling",
    "Rattling",
    "Jumping",
    "Flaming",
    "Galloping",
    "Crackling",
    "Whistling",
    "Tumbling",
    "Roaring",
    "Creeping",
    "Shivering",
    "Bubbling",
    "Grumbling",
    "Wobbling",
    "Clattering",
    "Spluttering",
    "Jangling",
    "Squeaking",
    "Hopping",
    "Prancing",
    "Rumbling",
    "Flapping",
    "Wheezing",
    "Gurgling",
    "Jiggling",
    "Tottering",
    "Snorting",
    "Bellowing",
)
#: Distinct second words of the catchphrases: one per character, never used by the other domains.
CATCHPHRASE_NOUNS: tuple[str, ...] = (
    "barnacles",
    "kettles",
    "anchors",
    "turnips",
    "cannons",
    "biscuits",
    "teapots",
    "pebbles",
    "chimneys",
    "pickles",
    "buckets",
    "thimbles",
    "weasels",
    "trumpets",
    "cabbages",
    "doorknobs",
    "pancakes",
    "walruses",
    "gumboots",
    "saucepans",
    "parsnips",
    "mussels",
    "radishes",
    "crumpets",
    "bloomers",
    "goblets",
    "cauldrons",
    "pumpkins",
    "mackerels",
    "whiskers",
    "noodles",
    "pretzels",
)
ROLES: tuple[str, ...] = (
    "smuggler",
    "bard",
    "knight",
    "healer",
    "innkeeper",
    "thief",
    "ranger",
    "alchemist",
    "sailor",
    "blacksmith",
    "scholar",
    "merchant",
    "priestess",
    "hunter",
    "tinkerer",
    "guard captain",
)
LOCATION_KINDS: tuple[str, ...] = (
    "harbor",
    "tavern",
    "market",
    "tower",
    "forest camp",
    "mountain pass",
    "mill",
    "library",
    "chapel",
    "lighthouse",
    "bridge",
    "mine",
)
SPEECH_VERBS: tuple[str, ...] = (
    "grins",
    "shrugs",
    "laughs",
    "leans in",
    "raises a mug",
    "steps forward",
    "folds their arms",
    "looks around",
    "sighs",
    "nods slowly",
)
RP_LINES: tuple[str, ...] = (
    "We should reach the {place} before nightfall.",
    "I told you the {thing} would be trouble.",
    "Nobody touches the {thing} until I say so.",
    "Keep your voice down, the guards are near the {place}.",
    "If we leave now, we can still catch the ferry.",
    "That {thing} is worth more than all of us together.",
    "I have a bad feeling about this {place}.",
    "Let me do the talking this time.",
    "Did anyone else hear that noise?",
    "Fine, but you owe me a hot meal.",
    "The map says the {place} is just over the ridge.",
    "Hand me the {thing}, quickly!",
    "I am not climbing that wall again.",
    "Who left the door of the {place} open?",
    "We split the gold evenly, agreed?",
    "Stay close and watch the shadows.",
)
RP_THINGS: tuple[str, ...] = (
    "lantern",
    "map",
    "chest",
    "amulet",
    "rope",
    "key",
    "sword",
    "letter",
    "crate",
    "compass",
    "horn",
)

# ----------------------------------------------------------------------------------------------- reasoning
PEOPLE: tuple[str, ...] = (
    "Mira",
    "Tomas",
    "Lena",
    "Odo",
    "Pia",
    "Rafe",
    "Sela",
    "Bruno",
    "Ines",
    "Kofi",
    "Nadia",
    "Yusuf",
    "Greta",
    "Hugo",
    "Lila",
    "Marek",
    "Anya",
    "Dario",
    "Efa",
    "Joss",
)
COUNT_OBJECTS: tuple[str, ...] = (
    "apples",
    "marbles",
    "stamps",
    "coins",
    "pencils",
    "shells",
    "cards",
    "beads",
    "buttons",
    "plums",
    "stickers",
    "cookies",
    "eggs",
    "books",
    "candles",
    "ribbons",
)

# ----------------------------------------------------------------------------------------------- function calling
CITIES: tuple[str, ...] = (
    "Oslo",
    "Lima",
    "Cairo",
    "Hanoi",
    "Quito",
    "Dakar",
    "Perth",
    "Riga",
    "Tunis",
    "Osaka",
    "Porto",
    "Bern",
)
PERSON_NAMES: tuple[str, ...] = (
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Eli",
    "Fatima",
    "Gus",
    "Hana",
    "Ivan",
    "Jade",
    "Kim",
    "Leo",
)
DAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
COLORS: tuple[str, ...] = ("red", "blue", "green", "black", "white", "yellow", "purple", "orange")
ITEMS: tuple[str, ...] = ("laptop", "umbrella", "teapot", "backpack", "lamp", "bicycle", "camera", "desk")
LANGUAGES: tuple[str, ...] = ("french", "german", "spanish", "japanese", "swahili", "italian", "polish")
UNITS: tuple[str, ...] = ("celsius", "fahrenheit", "kelvin")
CURRENCIES: tuple[str, ...] = ("usd", "eur", "gbp", "jpy", "inr", "brl")
GENRES: tuple[str, ...] = ("jazz", "rock", "folk", "techno", "opera", "reggae", "blues")
TOPICS: tuple[str, ...] = ("volcanoes", "chess", "gardening", "robots", "bread", "trains", "bees")

# ----------------------------------------------------------------------------------------------- general prose
ANIMALS: tuple[str, ...] = (
    "heron",
    "badger",
    "otter",
    "lynx",
    "beetle",
    "sparrow",
    "salmon",
    "tortoise",
    "hare",
    "owl",
    "moth",
    "newt",
    "falcon",
    "vole",
    "marten",
    "crane",
    "gecko",
    "bison",
    "wren",
    "carp",
)
PLANTS: tuple[str, ...] = (
    "fern",
    "willow",
    "heather",
    "moss",
    "oak",
    "lichen",
    "clover",
    "reed",
    "birch",
    "thyme",
    "sedge",
    "juniper bush",
    "bramble",
    "poppy",
    "alder",
)
HABITATS: tuple[str, ...] = (
    "wetlands",
    "meadows",
    "river valleys",
    "rocky coasts",
    "pine forests",
    "open grasslands",
    "high moors",
    "shallow lakes",
    "desert edges",
    "old orchards",
)
FOODS: tuple[str, ...] = (
    "insects",
    "seeds",
    "small fish",
    "berries",
    "roots",
    "worms",
    "leaves",
    "snails",
    "grasses",
    "nectar",
)
TRAITS: tuple[str, ...] = (
    "patience",
    "sharp eyesight",
    "quiet movement",
    "bright colouring",
    "long migrations",
    "careful nesting",
    "loud calls",
    "strong jaws",
    "thick fur",
    "playful habits",
)
ADJECTIVES: tuple[str, ...] = (
    "common",
    "shy",
    "small",
    "elegant",
    "hardy",
    "curious",
    "rare",
    "slender",
    "sturdy",
    "gentle",
    "quick",
    "patient",
    "solitary",
    "social",
)
SEASONS: tuple[str, ...] = ("spring", "summer", "autumn", "winter")
CRAFTS: tuple[str, ...] = (
    "weaving",
    "pottery",
    "woodcarving",
    "bookbinding",
    "glassblowing",
    "basketry",
    "embroidery",
    "candle making",
    "leatherwork",
    "calligraphy",
)
MATERIALS: tuple[str, ...] = (
    "wool",
    "clay",
    "linen",
    "cedar",
    "willow rods",
    "beeswax",
    "paper",
    "silk thread",
    "sand",
    "hide",
)
TOOLS: tuple[str, ...] = (
    "a loom",
    "a wheel",
    "a chisel",
    "a needle",
    "a knife",
    "a kiln",
    "a brush",
    "a frame",
    "a press",
)
WEATHER: tuple[str, ...] = (
    "fog",
    "drizzle",
    "frost",
    "gusty wind",
    "warm sunshine",
    "heavy cloud",
    "light snow",
    "thunderstorms",
)
INSTRUMENTS: tuple[str, ...] = (
    "cello",
    "flute",
    "harp",
    "oboe",
    "accordion",
    "banjo",
    "clarinet",
    "bagpipe",
    "marimba",
    "viola",
)
