"""Word lists for the scene-graph rules (:mod:`parsers.rules`).

Origin: every list was written after reading the FACTUAL *train* split
(``factual/train.jsonl``) only. The hand lists (relational nouns, quantifier nouns, pronouns ...)
encode its annotation conventions; the tables marked *train-derived* were counted by running the
rules over train and aligning their output with the human graphs (``CLOTHING``: on the human
graphs alone), with the criterion each table's comment states;
``experiments/parsers/derive_lexicon.py`` counts them. No dev or test data went into them.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, Optional, Tuple

#: Nouns that, followed by ``of``, form a multiword preposition with the preceding preposition
#: ("on top of", "in front of", "on the side of", "at the end of").
RELATIONAL_NOUNS: FrozenSet[str] = frozenset({
    "top", "front", "side", "sides", "middle", "edge", "back", "bottom", "left", "right", "end",
    "center", "centre", "corner", "rear", "inside", "outside", "surface", "base", "tip", "underside",
    "background", "foreground", "rest", "midst", "face", "rim",
})

#: Modifiers of a relational noun kept in the predicate ("on the right side of").
RELATIONAL_MODIFIERS: FrozenSet[str] = frozenset({"left", "right", "either", "other", "far", "back", "front"})

#: Adverbs / prepositions folded into a following preposition ("next to", "out of", "close to").
PREP_ADVERBS: FrozenSet[str] = frozenset({
    "next", "out", "close", "ahead", "up", "down", "away", "together", "off", "along", "back",
    "inside", "outside", "across", "near", "right", "far", "in", "on", "from", "over", "around",
    "apart", "alongside", "aside", "because", "instead", "onto", "into",
})

#: Quantifier nouns before "of": value = the attribute FACTUAL gives the complement (None: nothing).
QUANTIFIER_NOUNS: Dict[str, Optional[str]] = {
    "group": "group of", "piece": "piece", "slice": "slice", "part": "part", "patch": "patch",
    "pile": "pile", "bunch": None, "row": None, "pair": None, "lot": None, "lots": None, "herd": None,
    "flock": None, "crowd": None, "couple": None, "set": None, "number": None, "stack": None,
    "line": None, "collection": None, "variety": None, "kind": None, "type": None, "sort": None,
    "bit": None, "handful": None, "cluster": None, "clump": None, "few": None, "plenty": None,
    "assortment": None, "series": None, "array": None, "team": None, "bundle": None, "load": None,
    "sheet": None, "strip": None, "chunk": None, "amount": None, "mass": None, "layer": None,
}

#: Indefinite pronouns kept as objects, with their FACTUAL name.
PRONOUN_OBJECTS: Dict[str, str] = {
    "someone": "person", "somebody": "person", "something": "something", "everyone": "people",
    "anyone": "person", "everybody": "people",
}

#: Nouns FACTUAL does not keep as objects: scene and image words, plus (train-derived) nouns the
#: rules found ≥ 5 times that match a FACTUAL object in < 25 % of captions (mostly colour words
#: and directions the tagger reads as nouns).
NON_OBJECTS: FrozenSet[str] = frozenset({
    "picture", "image", "photo", "photograph", "view", "scene", "shot", "background", "foreground",
    "distance", "day", "daytime", "time", "way", "color", "colour", "shape", "front", "top",
    "side", "bottom", "middle", "kind", "type", "lot", "lots", "close", "closeup", "close-up",
    "-", "balance", "black", "blue", "brown", "dark", "direction", "end", "gold", "green", "grey",
    "gray", "half", "inside", "left", "right", "living", "metal", "multi", "navy", "one", "plaid",
    "portion", "red", "sale", "silver", "skiing", "standing", "tan", "trick", "white", "w/",
    "yellow", "pink", "purple", "orange", "beige", "playing",
})

#: Compound modifiers FACTUAL records as attributes of the head noun rather than as part of its
#: name: materials (hand list) and, train-derived, modifiers for which FACTUAL's attribute reading
#: (head + attribute) occurs ≥ 3 times and at least as often as the compound name and the
#: "have" reading together; plus :data:`COLOURS`.
COMPOUND_ATTRIBUTES: FrozenSet[str] = frozenset({
    "brick", "metal", "stone", "glass", "plastic", "wood", "concrete", "cement", "leather", "wire",
    "steel", "iron", "paper", "gold", "silver", "dirt", "gravel", "chocolate",
    "adult", "apple", "baby", "bamboo", "chrome", "computer", "cowboy", "fighter", "football",
    "grassy", "khaki", "laptop", "leafy", "marble", "mother", "ocean", "pine", "plaid",
    "porcelain", "rock", "round", "rubber", "straw", "stripe", "suit", "toy", "utility", "wii",
    "wine", "wispy", "tomato", "clay", "circle", "oval", "rectangle", "wax", "storm", "electric",
    "calico", "bmw", "chainlink", "exhaust", "butterfly", "amusement", "triangular", "shirtless",
})

#: Modifier words that are never attribute values: quantifiers and ordinals (hand list) and,
#: train-derived, values the rules produced ≥ 5 times that match FACTUAL's attributes < 20 % of the
#: time (positions such as "front" / "left", participles FACTUAL turns into relations).
NON_ATTRIBUTES: FrozenSet[str] = frozenset({
    "other", "same", "such", "many", "several", "few", "more", "most", "much", "each", "every",
    "another", "various", "numerous", "only", "own", "very", "first", "second", "third", "last",
    "next", "'s", "s", "-", "both", "all", "some", "any", "no", "certain", "different", "whole",
    "attached", "back", "batter", "bordering", "bottom", "carrying", "colored", "coloured",
    "covered", "double", "drawn", "dressed", "driving", "facing", "fashioned", "fenced", "filled",
    "framed", "front", "growing", "haired", "hanging", "holding", "human", "laying", "left",
    "looking", "lower", "lying", "made", "middle", "multi", "multicolored", "multiple", "oven",
    "overlooking", "pet", "playing", "pointing", "reflecting", "riding", "right", "set", "shaped",
    "sitting", "skateboard", "skateboarder", "ski", "skiing", "sleeved", "sliced", "sticking",
    "supporting", "surrounding", "swinging", "tiled", "top", "touching", "wearing", "upper",
    "rear", "far", "near", "outer", "inner", "side", "center", "central",
})

#: Verbs whose bare participles are not attributes ("shown", "seen", "pictured").
NON_ATTRIBUTE_VERBS: FrozenSet[str] = frozenset({
    "be", "have", "do", "show", "see", "picture", "photograph", "take", "make", "get", "go", "let",
    "seem", "appear", "look", "include", "feature", "use",
})

#: Verbs that link a subject to an adjective like the copula ("looks happy").
LINKING_VERBS: FrozenSet[str] = frozenset({"look", "appear", "seem", "become", "remain", "stay", "get"})

#: Lemma corrections for verbs and participle-adjectives used as predicates.
VERB_LEMMA: Dict[str, str] = {
    "lie": "lay", "lying": "lay", "laying": "lay", "attached": "attach", "covered": "cover",
    "filled": "fill", "made": "make", "parked": "park", "mounted": "mount", "tied": "tie",
    "painted": "paint", "stacked": "stack", "placed": "place", "located": "locate",
    "dressed": "dress", "seated": "sit", "perched": "perch", "stuck": "stick", "full": "fill with",
    "connected": "connect", "hung": "hang", "surrounded": "surround", "topped": "top",
    "loaded": "load", "lined": "line", "decorated": "decorate", "reflected": "reflect",
    "written": "write", "printed": "print", "displayed": "display", "leaning": "lean",
}

#: Predicate forms mapped to FACTUAL's: ``form -> (predicate, reverse)``; ``reverse`` swaps subject
#: and object ("table covered with food" → (food, cover, table)). Train-derived: the rules' output
#: predicate was aligned with the human relation between the same two objects; a form is listed
#: when (≥ 4 times, ≥ 50 % of its occurrences) one other FACTUAL predicate or direction wins. The
#: rest are spelling variants of FACTUAL's compound prepositions seen in train.
PREDICATE_MAP: Dict[str, Tuple[str, bool]] = {
    "along side of": ("alongside", False), "at bottom of": ("on bottom of", False),
    "at edge of": ("on edge of", False), "at end of": ("in end of", False),
    "at top of": ("on top of", False), "atop": ("on top of", False), "below": ("under", False),
    "beneath": ("under", False), "underneath": ("under", False), "besides": ("beside", False),
    "by side of": ("on side of", False), "cover in": ("cover", True), "cover with": ("cover", True),
    "cover by": ("cover", True), "dust with": ("cover", True), "fill": ("fill with", True),
    "hang down from": ("hang from", False), "hold on to": ("hold", False), "hold onto": ("hold", False),
    "hold up": ("hold", False), "in between": ("between", False), "inside of": ("inside", False),
    "lie": ("lay", False), "lie down in": ("lay in", False), "lie down on": ("lay on", False),
    "lie on": ("lay on", False), "lie in": ("lay in", False), "line with": ("line", True),
    "look down at": ("look at", False), "on front of": ("in front of", False),
    "on left side of": ("at the left of", False), "on the left side of": ("at the left of", False),
    "to the left of": ("at the left of", False), "to left of": ("at the left of", False),
    "on right side of": ("on the right side of", False),
    "to the right of": ("on the right side of", False), "outside of": ("outside", False),
    "overhang": ("hang over", False), "rid": ("ride", False), "rid down": ("ride down", False),
    "rid in": ("ride in", False), "rid on": ("ride on", False), "seat at": ("sit at", False),
    "seat on": ("sit on", False), "seat in": ("sit in", False), "shin on": ("shine on", False),
    "shin through": ("shine through", False), "shin in": ("shine in", False),
    "sit down on": ("sit on", False), "ske on": ("ski on", False), "star at": ("stare at", False),
    "to side of": ("on side of", False), "in the middle of": ("on middle of", False),
    "in middle of": ("on middle of", False), "on the side of": ("on side of", False),
    "on the top of": ("on top of", False), "on the back of": ("on back of", False),
    "on the edge of": ("on edge of", False), "on the bottom of": ("on bottom of", False),
    "at the bottom of": ("on bottom of", False), "at the top of": ("on top of", False),
    "at the edge of": ("on edge of", False), "at the end of": ("in end of", False),
    "on the front of": ("in front of", False), "on other side of": ("on side of", False),
    "on the other side of": ("on side of", False), "by the side of": ("on side of", False),
    "fill with with": ("fill with", False), "fill with of": ("fill with", False),
    "wear in": ("wear", False), "dress in": ("wear", False),
}

#: Objects FACTUAL relates with "wear" when the caption says "in" / "with" ("man in a red shirt").
#: Train-derived: heads of objects that are the object of "wear" in ≥ 50 % (and ≥ 4) of their
#: relations in train.
CLOTHING: FrozenSet[str] = frozenset({
    "apron", "cap", "uniform", "suit", "belt", "blazer", "boot", "tie", "bracelet", "clothes",
    "clothing", "coat", "costume", "dress", "shirt", "glass", "eyeglass", "eyeglasses", "glasses",
    "glove", "goggle", "goggles", "hat", "headband", "helmet", "jacket", "jean", "jeans", "jersey",
    "legging", "leggings", "mask", "necklace", "necktie", "outfit", "pajama", "pajamas", "pant",
    "pants", "sandal", "scarf", "shoe", "short", "shorts", "skirt", "sneaker", "sock", "sunglass",
    "sunglasses", "sweater", "sweatshirt", "t-shirt", "top", "watch", "wetsuit", "band", "vest",
})

#: Predicates that become "wear" before a :data:`CLOTHING` object ("dress in" and "wear in" are
#: already "wear" through :data:`PREDICATE_MAP`).
WEAR_PREPOSITIONS: FrozenSet[str] = frozenset({"in", "with"})

#: "X of Y" relations other than (Y, have, X), keyed by X's head lemma: (direction, predicate);
#: "forward" gives (X, predicate, Y), "reverse" gives (Y, predicate, X). Hand list (containers and
#: supports, after FACTUAL's convention in train), not counted.
OF_RELATIONS: Dict[str, Tuple[str, str]] = {
    "plate": ("reverse", "on"), "glass": ("reverse", "in"), "cup": ("reverse", "in"),
    "bowl": ("reverse", "in"), "bottle": ("reverse", "in"), "box": ("reverse", "in"),
    "line": ("reverse", "in"), "tray": ("reverse", "on"), "basket": ("reverse", "in"),
    "reflection": ("reverse", "have"),
}

#: Object names mapped to FACTUAL's (train-derived: the rules' object was the only unmatched one
#: of its caption and FACTUAL's only unmatched object was the target, ≥ 4 times and in ≥ 50 % of
#: the name's occurrences, and the name matches a FACTUAL object in < 30 % of its captions;
#: spelling variants and FACTUAL's "person" for "guy").
NAME_MAP: Dict[str, str] = {
    "guy": "person", "mans": "man", "cell phone": "cellphone", "t shirt": "t-shirt",
    "tee shirt": "t-shirt", "tshirt": "t-shirt", "hotdog": "hot dog", "side walk": "sidewalk",
    "surf board": "surfboard", "snow board": "snowboard", "streetlight": "street light",
    "refridgerator": "refrigerator", "skiier": "skier", "teddy": "teddy bear",
    "laptop computer": "computer", "steer wheel": "wheel", "view mirror": "mirror",
    "decker bus": "bus", "short": "shorts", "chain link fence": "fence",
}

#: Colour words (compound or adjective modifiers that are attributes).
COLOURS: FrozenSet[str] = frozenset({
    "white", "black", "blue", "green", "red", "brown", "yellow", "gray", "grey", "orange", "pink",
    "purple", "tan", "silver", "gold", "golden", "beige", "maroon", "navy", "teal", "turquoise",
    "violet", "lavender", "burgundy", "khaki", "cream", "blond", "blonde",
})

#: Shade words merged with a following colour into one attribute ("dark green", "light blue").
SHADES: FrozenSet[str] = frozenset({"dark", "light", "bright", "pale", "deep", "navy", "royal", "neon"})

#: Adjective modifiers that form a fixed name with their noun ("hot dog", "polar bear").
AMOD_NAMES: FrozenSet[str] = frozenset({"hot", "polar", "french", "double", "remote", "living", "teddy",
                                        "stop", "fire", "cutting", "tennis", "baseball", "traffic"})

#: Attribute values mapped to FACTUAL's ("wood bench" → wooden).
ATTRIBUTE_MAP: Dict[str, str] = {"wood": "wooden"}

#: Compound modifiers read as the owner of the head ("tree branch" → (tree, have, branch)).
#: Train-derived: modifier words for which FACTUAL's (modifier, have, head) occurs ≥ 3 times and at
#: least as often as the compound name and the attribute reading together.
COMPOUND_OWNERS: FrozenSet[str] = frozenset({
    "airplane", "bear", "bird", "car", "elephant", "person", "plane", "tv", "tree", "giraffe",
})

# ------------------------------------------------------------------ coreference (hand lists)
#: Nouns (lemmas) that name a male / female person: the antecedents ``he`` / ``she`` prefer.
MALE_NOUNS: FrozenSet[str] = frozenset({
    "man", "boy", "guy", "gentleman", "father", "dad", "daddy", "son", "brother", "husband", "groom",
    "bridegroom", "king", "prince", "uncle", "grandfather", "grandpa", "boyfriend", "monk", "businessman",
    "fisherman", "policeman", "fireman", "cowboy", "batsman", "sportsman", "actor", "waiter", "gentlemen",
    "grandson", "nephew", "priest", "male", "lad", "sir", "mr",
})
FEMALE_NOUNS: FrozenSet[str] = frozenset({
    "woman", "girl", "lady", "mother", "mom", "mommy", "mum", "daughter", "sister", "wife", "bride", "queen",
    "princess", "aunt", "grandmother", "grandma", "girlfriend", "nun", "businesswoman", "policewoman",
    "waitress", "actress", "ballerina", "cowgirl", "granddaughter", "niece", "female", "mrs", "ms", "miss",
})
#: Nouns that name a person of either sex (``he`` / ``she`` / ``they`` may refer to them, ``it``
#: does not).
PERSON_NOUNS: FrozenSet[str] = frozenset({
    "person", "people", "child", "kid", "baby", "toddler", "infant", "player", "skier", "surfer", "skater",
    "skateboarder", "snowboarder", "rider", "biker", "cyclist", "bicyclist", "motorcyclist", "pedestrian",
    "tourist", "student", "teacher", "worker", "officer", "soldier", "doctor", "nurse", "chef", "cook",
    "driver", "passenger", "catcher", "pitcher", "batter", "umpire", "referee", "athlete", "owner", "parent",
    "friend", "adult", "teenager", "teen", "youth", "spectator", "fan", "customer", "vendor", "farmer",
    "human", "individual", "traveler", "traveller", "shopper", "hiker", "runner", "jogger", "swimmer",
    "dancer", "singer", "musician", "artist", "photographer", "police", "cop", "pilot", "sailor", "guard",
    "chef", "baker", "butcher", "clerk", "cashier", "employee", "staff", "coach", "fielder", "goalie",
    "jockey", "kiter", "kiteboarder", "climber", "diver", "golfer", "boxer", "wrestler", "server",
    "bartender", "mechanic", "carpenter", "painter", "builder", "tennis player", "baseball player",
    "someone", "somebody", "anyone", "everyone", "everybody", "user", "visitor", "guest", "audience",
    "crowd", "family", "couple", "team", "group", "member", "toddler", "teammate", "opponent", "partner",
})
#: Animals: ``he`` / ``she`` may refer to them when no person comes before (and ``it`` too).
ANIMAL_NOUNS: FrozenSet[str] = frozenset({
    "animal", "dog", "puppy", "cat", "kitten", "kitty", "horse", "pony", "foal", "cow", "calf", "bull", "ox",
    "sheep", "lamb", "goat", "pig", "bird", "duck", "goose", "chicken", "hen", "rooster", "pigeon", "seagull",
    "gull", "parrot", "owl", "eagle", "elephant", "giraffe", "zebra", "bear", "lion", "tiger", "monkey", "deer",
    "donkey", "mule", "camel", "rabbit", "bunny", "mouse", "squirrel", "fox", "wolf", "dolphin", "whale",
    "fish", "turtle", "snake", "frog", "swan", "penguin", "teddy bear",
})
#: Words that mark a mention as another entity than an earlier one of the same name (``another
#: man``, ``the other man``, ``a second man``).
NEW_ENTITY_WORDS: FrozenSet[str] = frozenset({
    "another", "other", "second", "third", "fourth", "fifth", "sixth", "2nd", "3rd", "4th", "different",
    "additional", "extra", "one",
})
