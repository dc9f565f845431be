"""Prompt words -> a landscape recipe: biome, landform, water, time of day, weather, mist, plants.

Deterministic: the same prompt always gives the same recipe. Each word is looked up in the
tables below (plural and a few suffixes folded); words that carry no landscape meaning ("a",
"under", "beautiful") are ignored, and every other word the tables do not know is reported in
``Recipe.unknown`` so the caller can say it is not modelled. ``docs/procedural.md`` lists the
vocabulary for users; keep the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BIOMES = ("grassland", "temperate", "alpine", "tundra", "desert", "canyon", "tropical", "volcanic")
LANDFORMS = ("hills", "mountains", "valley", "canyon", "fjord", "island", "coast", "plateau", "dunes", "plains")
TIMES = ("dawn", "morning", "noon", "afternoon", "sunset", "dusk", "night")
WEATHERS = ("clear", "fair", "cloudy", "overcast", "stormy")

# word -> (field, value). Fields: biome, landform, water, time, weather, mist, snow, plants.
_TABLE: dict[str, tuple[str, object]] = {}


def _add(field: str, value: object, words: str) -> None:
    for word in words.split():
        _TABLE[word] = (field, value)


_add("biome", "desert", "desert sahara arid dry drought wasteland badlands")
_add("biome", "canyon", "red redrock sandstone mesa mesas arizona utah")
_add("biome", "tropical", "tropical tropics jungle rainforest paradise caribbean exotic")
_add("biome", "temperate", "temperate woodland green lush meadow meadows countryside pastoral")
_add("biome", "alpine", "alpine alps rocky highland highlands")
_add("biome", "tundra", "tundra arctic polar frozen glacial glacier glaciers icy ice iceland")
_add("biome", "volcanic", "volcanic volcano volcanoes lava magma crater eruption basalt")
_add("biome", "grassland", "grassland grass grassy prairie savanna savannah steppe farmland field fields pasture")
_add("landform", "hills", "hill hills rolling hilly slope slopes downs")
_add("landform", "mountains", "mountain mountains mountainous peak peaks range ridge ridges summit cliffs cliff")
_add("landform", "valley", "valley valleys vale glen dale gorge")
_add("landform", "canyon", "canyon canyons ravine")
_add("landform", "fjord", "fjord fjords inlet sound")
_add("landform", "island", "island islands isle islet archipelago atoll")
_add("landform", "coast", "coast coastal coastline beach beaches shore shoreline seaside bay cove seashore")
_add("landform", "plateau", "plateau plateaus tableland butte buttes")
_add("landform", "dunes", "dune dunes sand sandy erg")
_add("landform", "plains", "plain plains flat flatlands lowland lowlands")
_add("water", "sea", "sea seas ocean oceans waves surf")
_add("water", "lake", "lake lakes pond lagoon loch reservoir water waters")
_add("water", "river", "river rivers stream creek brook waterfall")
_add("time", "dawn", "dawn sunrise daybreak")
_add("time", "morning", "morning")
_add("time", "noon", "noon midday daylight day daytime sunny sunlit")
_add("time", "afternoon", "afternoon")
_add("time", "sunset", "sunset golden evening")
_add("time", "dusk", "dusk twilight")
_add("time", "night", "night nighttime midnight moon moonlit moonlight stars starry starlit dark")
_add("weather", "clear", "clear cloudless blue")
_add("weather", "cloudy", "cloudy clouds cloud")
_add("weather", "overcast", "overcast grey gray gloomy dreary rain rainy drizzle")
_add("weather", "stormy", "storm stormy storms thunder thunderstorm tempest lightning wild")
_add("mist", 0.9, "fog foggy")
_add("mist", 0.7, "mist misty mists")
_add("mist", 0.4, "haze hazy smoky")
_add("snow", True, "snow snowy snowcapped winter wintry blizzard frost frosty")
_add("plants", "pine", "pine pines conifer conifers spruce fir firs taiga boreal evergreen")
_add("plants", "broadleaf", "forest forests trees tree woods wood oak oaks birch grove orchard")
_add("plants", "palm", "palm palms coconut")
_add("plants", "shrub", "shrub shrubs bush bushes scrub heath moor moorland")
_add("plants", "bare", "barren bare desolate")

# Words with no landscape meaning of their own: neither modelled nor worth reporting.
IGNORED = set("""a an the and or of in on at by with under over above below beneath near beside across
through from to into onto its their my our this that these those is are very some many few
big small huge vast tall high low deep wide long little large distant far view scene landscape
world place beautiful stunning gorgeous epic serene calm peaceful quiet majestic dramatic scenic
panorama panoramic photo photograph picture image render realistic photorealistic detailed
lovely nice pretty amazing breathtaking sky skies sun light lit soft bright""".split())

# Defaults each landform brings when the prompt says nothing about them.
_LANDFORM_WATER = {"fjord": "sea", "island": "sea", "coast": "sea", "canyon": "river", "valley": "river"}
_BIOME_LANDFORM = {"desert": "dunes", "canyon": "canyon", "alpine": "mountains", "tundra": "hills",
                   "volcanic": "island", "tropical": "coast"}
_LANDFORM_BIOME = {"fjord": "alpine", "canyon": "canyon", "dunes": "desert", "mountains": "alpine",
                   "plateau": "canyon", "island": "tropical", "coast": "temperate"}
_BIOME_PLANTS = {"temperate": "broadleaf", "tropical": "palm", "grassland": "shrub", "alpine": "pine",
                 "tundra": "bare", "desert": "shrub", "canyon": "shrub", "volcanic": "bare"}


@dataclass(frozen=True)
class Recipe:
    """What the prompt asks for; every field has a default, so any prompt makes a world."""

    biome: str = "grassland"
    landform: str = "hills"
    water: str = "none"  # none, sea, lake, river
    time: str = "afternoon"
    weather: str = "fair"
    mist: float = 0.0  # 0 = clear air, 1 = thick fog
    snow: bool = False
    plants: str = "shrub"  # pine, broadleaf, palm, shrub, bare
    unknown: tuple = ()  # words the vocabulary does not model, in prompt order

    @classmethod
    def from_prompt(cls, prompt: str) -> "Recipe":
        found: dict[str, object] = {}
        unknown: list[str] = []
        for word in re.findall(r"[a-z]+", prompt.lower()):
            entry = lookup(word)
            if entry is None:
                if word not in IGNORED and len(word) > 1 and word not in unknown:
                    unknown.append(word)
                continue
            field, value = entry
            found.setdefault(field, value)  # the first word for a field wins
        return cls._complete(found, tuple(unknown))

    @classmethod
    def _complete(cls, found: dict, unknown: tuple) -> "Recipe":
        """Fill what the prompt left open from what it did say (a fjord implies the sea, a desert dunes)."""
        biome = found.get("biome")
        landform = found.get("landform") or _BIOME_LANDFORM.get(biome or "", "hills")
        if biome is None:
            bare = not found.keys() & {"landform", "plants", "water", "snow"}  # nothing said of the land itself
            biome = _LANDFORM_BIOME.get(landform, "temperate" if found.get("plants") or bare else "grassland")
            if found.get("snow") and not found.get("plants"):
                biome = "alpine" if landform in ("mountains", "fjord") else "tundra"
        water = found.get("water") or _LANDFORM_WATER.get(landform, "none")
        if landform == "island" or (water == "sea" and landform in ("hills", "plains", "mountains")):
            landform = landform if landform == "island" else "coast"
        plants = found.get("plants") or _BIOME_PLANTS[biome]
        return cls(biome=biome, landform=landform, water=water, time=str(found.get("time", "afternoon")),
                   weather=str(found.get("weather", "fair")), mist=float(found.get("mist", 0.0)),
                   snow=bool(found.get("snow", False)), plants=plants, unknown=unknown)

    def note(self) -> str:
        """The one-line message for unmodelled words ('' when every word was understood)."""
        if not self.unknown:
            return ""
        names = ", ".join(f"'{w}'" for w in self.unknown)
        verb = "is" if len(self.unknown) == 1 else "are"
        return f"procedural: {names} {verb} not modelled; showing the nearest landscape"

    def describe(self) -> dict:
        return {"biome": self.biome, "landform": self.landform, "water": self.water, "time": self.time,
                "weather": self.weather, "mist": self.mist, "snow": self.snow, "plants": self.plants,
                "not_modelled": list(self.unknown)}


def lookup(word: str):
    """(field, value) for a word or its simple inflections (plurals, -y, -ed), else None."""
    for candidate in (word, word[:-1] if word.endswith("s") else None, word[:-2] if word.endswith("es") else None,
                      word[:-2] if word.endswith("ed") else None):
        if candidate and candidate in _TABLE:
            return _TABLE[candidate]
    return None


def vocabulary() -> dict[str, dict[str, list[str]]]:
    """field -> value -> words, for documentation and tests."""
    out: dict[str, dict[str, list[str]]] = {}
    for word, (field, value) in sorted(_TABLE.items()):
        out.setdefault(field, {}).setdefault(str(value), []).append(word)
    return out
