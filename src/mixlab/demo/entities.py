"""The fixed cast of the demo world, drawn once from the seed.

The corpus domains teach facts about these entities (a character's catchphrase, a function's argument keys,
a land's capital) over and over, and the tasks test them on held-out draws, so a tiny model can only score
above chance on a task when the matching domain was in its training mixture.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mixlab.demo import lexicon as lx


@dataclass(frozen=True)
class Character:
    """A role-play character with a fixed two-word catchphrase (``Blistering barnacles!``)."""

    name: str
    role: str
    home: str
    adjective: str
    noun: str

    @property
    def catchphrase(self) -> str:
        return phrase(self.adjective, self.noun)


def phrase(adjective: str, noun: str) -> str:
    """A catchphrase made of two words (real for a character, or a recombination used as a distractor)."""
    return f"{adjective} {noun}!"


@dataclass(frozen=True)
class Land:
    """A land of the RAG knowledge base: a fixed value (a two-word name) per attribute."""

    name: str
    kind: str
    facts: dict[str, str]


@dataclass(frozen=True)
class Param:
    """One argument of a demo function: its key, JSON type and the values requests draw from."""

    key: str
    json_type: str  # "string" | "integer"
    values: tuple[str, ...]
    description: str

    def render(self, value: str) -> str:
        """The argument as it appears in a call: ``key="value"`` or ``key=3``."""
        return f'{self.key}="{value}"' if self.json_type == "string" else f"{self.key}={value}"


@dataclass(frozen=True)
class FunctionSpec:
    """A callable tool of the demo world with a fixed name and JSON-schema signature."""

    name: str
    description: str
    params: tuple[Param, ...]
    requests: tuple[str, ...]  # templates with ``{key}`` placeholders

    def schema(self) -> dict[str, object]:
        """The JSON schema of the parameters (all required)."""
        return {
            "type": "object",
            "properties": {p.key: {"type": p.json_type, "description": p.description} for p in self.params},
            "required": [p.key for p in self.params],
        }

    def call(self, values: dict[str, str], keys: list[str] | None = None) -> str:
        """Render a call; ``keys`` (same length as params) replaces the argument keys, for distractors."""
        parts = []
        for i, p in enumerate(self.params):
            key = keys[i] if keys is not None else p.key
            v = values[p.key]
            parts.append(f'{key}="{v}"' if p.json_type == "string" else f"{key}={v}")
        return f"{self.name}({', '.join(parts)})"


def _ints(lo: int, hi: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(lo, hi + 1))


def _function_specs() -> tuple[FunctionSpec, ...]:
    """The twenty demo functions (fixed; only their use in documents is random)."""
    P = Param

    def city(key: str, description: str) -> Param:
        return Param(key, "string", lx.CITIES, description)

    def num(key: str, lo: int, hi: int, description: str) -> Param:
        return Param(key, "integer", _ints(lo, hi), description)

    return (
        FunctionSpec(
            "get_weather",
            "Look up the weather forecast for a city.",
            (city("city_name", "City to forecast."), P("temp_unit", "string", lx.UNITS, "Unit.")),
            (
                "What is the weather like in {city_name}, in {temp_unit}?",
                "Tell me the forecast for {city_name} using {temp_unit}.",
            ),
        ),
        FunctionSpec(
            "send_message",
            "Send a short note to a contact.",
            (
                P("to_user", "string", lx.PERSON_NAMES, "Recipient."),
                P("msg_topic", "string", lx.TOPICS, "Subject of the note."),
            ),
            ("Send {to_user} a note about {msg_topic}.", "Message {to_user} and mention {msg_topic}."),
        ),
        FunctionSpec(
            "book_table",
            "Reserve a restaurant table.",
            (
                city("venue_city", "City of the restaurant."),
                num("party_size", 2, 9, "Guests."),
                P("on_day", "string", lx.DAYS, "Day of the booking."),
            ),
            (
                "Book a table in {venue_city} for {party_size} people on {on_day}.",
                "I need dinner for {party_size} in {venue_city} this {on_day}.",
            ),
        ),
        FunctionSpec(
            "convert_currency",
            "Convert an amount between currencies.",
            (
                num("amount", 2, 99, "Amount to convert."),
                P("from_cur", "string", lx.CURRENCIES, "Source currency."),
                P("to_cur", "string", lx.CURRENCIES, "Target currency."),
            ),
            ("Convert {amount} {from_cur} into {to_cur}.", "How much is {amount} {from_cur} in {to_cur}?"),
        ),
        FunctionSpec(
            "translate_article",
            "Translate an article into another language.",
            (
                P("article_topic", "string", lx.TOPICS, "What the article is about."),
                P("target_lang", "string", lx.LANGUAGES, "Language to translate into."),
            ),
            (
                "Translate the article on {article_topic} into {target_lang}.",
                "Can I read the {article_topic} article in {target_lang}?",
            ),
        ),
        FunctionSpec(
            "play_music",
            "Start playing music.",
            (P("genre_name", "string", lx.GENRES, "Genre."), num("volume_level", 1, 9, "Volume.")),
            (
                "Play some {genre_name} at volume {volume_level}.",
                "Put on {genre_name}, loudness {volume_level} please.",
            ),
        ),
        FunctionSpec(
            "set_alarm",
            "Set an alarm clock.",
            (P("alarm_day", "string", lx.DAYS, "Day."), num("at_hour", 1, 12, "Hour.")),
            ("Wake me on {alarm_day} at {at_hour} o'clock.", "Set an alarm for {at_hour} on {alarm_day}."),
        ),
        FunctionSpec(
            "order_item",
            "Order a product from the shop.",
            (
                P("product", "string", lx.ITEMS, "Product."),
                num("qty", 1, 9, "How many."),
                P("colour_choice", "string", lx.COLORS, "Colour."),
            ),
            (
                "Order {qty} {colour_choice} {product} for me.",
                "I want to buy {qty} of the {colour_choice} {product}.",
            ),
        ),
        FunctionSpec(
            "find_flights",
            "Search for flights between two cities.",
            (
                city("origin", "Departure city."),
                city("destination", "Arrival city."),
                P("depart_day", "string", lx.DAYS, "Day of departure."),
            ),
            (
                "Find flights from {origin} to {destination} on {depart_day}.",
                "Any planes leaving {origin} for {destination} on {depart_day}?",
            ),
        ),
        FunctionSpec(
            "create_event",
            "Add an event to the calendar.",
            (
                P("event_day", "string", lx.DAYS, "Day."),
                P("event_topic", "string", lx.TOPICS, "What the event is about."),
            ),
            (
                "Put a {event_topic} meeting in my calendar for {event_day}.",
                "Schedule something about {event_topic} on {event_day}.",
            ),
        ),
        FunctionSpec(
            "get_news",
            "Fetch the latest headlines.",
            (
                P("news_topic", "string", lx.TOPICS, "Topic."),
                P("news_lang", "string", lx.LANGUAGES, "Language of the articles."),
            ),
            (
                "Show me {news_lang} headlines about {news_topic}.",
                "What is new on {news_topic}? Answer in {news_lang}.",
            ),
        ),
        FunctionSpec(
            "rent_bike",
            "Rent a bicycle for some hours.",
            (city("pickup_city", "Where to pick it up."), num("hours", 1, 9, "Rental length.")),
            (
                "Rent me a bike in {pickup_city} for {hours} hours.",
                "I need a bicycle in {pickup_city}, {hours} hours.",
            ),
        ),
        FunctionSpec(
            "call_contact",
            "Start a phone call.",
            (
                P("contact_name", "string", lx.PERSON_NAMES, "Who to call."),
                P("call_lang", "string", lx.LANGUAGES, "Language for the transcript."),
            ),
            (
                "Call {contact_name} and transcribe it in {call_lang}.",
                "Ring {contact_name}, with {call_lang} captions.",
            ),
        ),
        FunctionSpec(
            "paint_room",
            "Estimate the paint for a room.",
            (P("wall_colour", "string", lx.COLORS, "Colour."), num("wall_count", 1, 9, "Walls.")),
            (
                "How much {wall_colour} paint for {wall_count} walls?",
                "Estimate paint to cover {wall_count} walls in {wall_colour}.",
            ),
        ),
        FunctionSpec(
            "search_books",
            "Search the library catalogue.",
            (P("book_topic", "string", lx.TOPICS, "Subject."), num("max_results", 1, 9, "Limit.")),
            (
                "List {max_results} books about {book_topic}.",
                "Find me up to {max_results} titles on {book_topic}.",
            ),
        ),
        FunctionSpec(
            "ship_package",
            "Ship a parcel.",
            (city("dest_city", "Destination."), num("weight_kg", 1, 30, "Weight in kilograms.")),
            (
                "Ship a {weight_kg} kg parcel to {dest_city}.",
                "Send my box of {weight_kg} kilos to {dest_city}.",
            ),
        ),
        FunctionSpec(
            "reserve_hotel",
            "Reserve a hotel room.",
            (city("hotel_city", "City."), num("nights", 1, 14, "Nights."), num("guests", 1, 6, "Guests.")),
            (
                "Reserve a hotel in {hotel_city} for {nights} nights, {guests} guests.",
                "We are {guests} people needing a room in {hotel_city} for {nights} nights.",
            ),
        ),
        FunctionSpec(
            "enroll_course",
            "Enroll in a language course.",
            (P("course_lang", "string", lx.LANGUAGES, "Language."), num("level", 1, 6, "Level.")),
            (
                "Sign me up for {course_lang} level {level}.",
                "Enroll me in the level {level} {course_lang} class.",
            ),
        ),
        FunctionSpec(
            "water_plants",
            "Water a garden zone.",
            (num("zone_id", 1, 9, "Garden zone."), num("minutes", 1, 30, "Duration.")),
            (
                "Water zone {zone_id} for {minutes} minutes.",
                "Run the sprinkler in zone {zone_id}, {minutes} minutes.",
            ),
        ),
        FunctionSpec(
            "stream_radio",
            "Tune in to an internet radio station.",
            (
                P("station_genre", "string", lx.GENRES, "Genre."),
                P("station_city", "string", lx.CITIES, "City of the station."),
            ),
            (
                "Stream a {station_genre} station from {station_city}.",
                "Tune into {station_genre} radio broadcasting in {station_city}.",
            ),
        ),
    )


#: Attributes every land of the knowledge base has (the RAG domain's sentence templates live in rag.py).
LAND_ATTRIBUTES: tuple[str, ...] = ("capital", "founder", "river", "rival", "harbor", "poet")
LAND_KINDS: tuple[str, ...] = ("kingdom", "island", "city-state", "valley", "republic", "duchy")


@dataclass(frozen=True)
class Entities:
    """The fixed cast of one demo world."""

    characters: tuple[Character, ...]
    places: tuple[str, ...]
    lands: tuple[Land, ...] = ()
    functions: tuple[FunctionSpec, ...] = field(default_factory=_function_specs)


def build_entities(seed: int, n_characters: int = 24, n_lands: int = 12) -> Entities:
    """Draw the characters, places and lands of the world for ``seed`` (functions are fixed).

    Every proper name is distinct: character names, places, land names and the words of the lands' values.
    """
    if n_characters > len(lx.CATCHPHRASE_ADJECTIVES) or n_characters > len(lx.CATCHPHRASE_NOUNS):
        raise ValueError(f"at most {len(lx.CATCHPHRASE_ADJECTIVES)} characters are supported")
    rng = random.Random(f"mixlab-demo-entities:{seed}")
    n_places = 12
    n_words = 2 * len(LAND_ATTRIBUTES) * n_lands
    names = lx.unique_names(rng, n_characters + n_places + n_lands + n_words, 2, 2)
    char_names = names[:n_characters]
    places = tuple(names[n_characters : n_characters + n_places])
    land_names = names[n_characters + n_places : n_characters + n_places + n_lands]
    words = iter(names[n_characters + n_places + n_lands :])
    adjectives = rng.sample(lx.CATCHPHRASE_ADJECTIVES, n_characters)
    nouns = rng.sample(lx.CATCHPHRASE_NOUNS, n_characters)
    characters = tuple(
        Character(name, rng.choice(lx.ROLES), rng.choice(places), adj, noun)
        for name, adj, noun in zip(char_names, adjectives, nouns, strict=True)
    )
    lands = tuple(
        Land(name, rng.choice(LAND_KINDS), {a: f"{next(words)} {next(words)}" for a in LAND_ATTRIBUTES})
        for name in land_names
    )
    return Entities(characters=characters, places=places, lands=lands)
