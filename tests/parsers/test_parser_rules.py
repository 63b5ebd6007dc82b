"""Rule tests on hand-built spaCy ``Doc`` objects (no statistical model involved).

Each analysis below is written out token by token as ``(text, pos, tag, lemma, dep, head)`` —
the parse a good English dependency parser gives the caption — so the tests pin the rules, not
the model.
"""
from __future__ import annotations

import pytest

spacy = pytest.importorskip("spacy")
from spacy.tokens import Doc  # noqa: E402

from parsers.rules import doc_to_scene_graph  # noqa: E402

_VOCAB = spacy.blank("en").vocab


def make_doc(tokens):
    """A ``Doc`` from ``(text, pos, tag, lemma, dep, head)`` tuples (``head``: absolute index)."""
    words = [t[0] for t in tokens]
    return Doc(_VOCAB, words=words, pos=[t[1] for t in tokens], tags=[t[2] for t in tokens],
               lemmas=[t[3] for t in tokens], deps=[t[4] for t in tokens],
               heads=[t[5] for t in tokens])


def graph(tokens):
    return doc_to_scene_graph(make_doc(tokens)).to_dict()


def rels(tokens):
    return {tuple(r) for r in graph(tokens)["relations"]}


def attrs(tokens):
    return {tuple(a) for a in graph(tokens)["attributes"]}



# man riding a horse
VERB_DIRECT_OBJECT = [
    ('man', 'NOUN', 'NN', 'man', 'ROOT', 0),
    ('riding', 'VERB', 'VBG', 'rid', 'acl', 0),
    ('a', 'DET', 'DT', 'a', 'det', 3),
    ('horse', 'NOUN', 'NN', 'horse', 'dobj', 1),
]


def test_verb_direct_object():
    g = graph(VERB_DIRECT_OBJECT)
    assert g == {'objects': ['horse', 'man'], 'attributes': [], 'relations': [['man', 'ride', 'horse']]}


# a cat sitting on a bed
VERB_PREPOSITION_MERGED = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('cat', 'NOUN', 'NN', 'cat', 'ROOT', 1),
    ('sitting', 'VERB', 'VBG', 'sit', 'acl', 1),
    ('on', 'ADP', 'IN', 'on', 'prep', 2),
    ('a', 'DET', 'DT', 'a', 'det', 5),
    ('bed', 'NOUN', 'NN', 'bed', 'pobj', 3),
]


def test_verb_preposition_merged():
    g = graph(VERB_PREPOSITION_MERGED)
    assert g == {'objects': ['bed', 'cat'], 'attributes': [], 'relations': [['cat', 'sit on', 'bed']]}


# the cat is on the bed
COPULA_KEEPS_BARE_PREPOSITION = [
    ('the', 'DET', 'DT', 'the', 'det', 1),
    ('cat', 'NOUN', 'NN', 'cat', 'nsubj', 2),
    ('is', 'AUX', 'VBZ', 'be', 'ROOT', 2),
    ('on', 'ADP', 'IN', 'on', 'prep', 2),
    ('the', 'DET', 'DT', 'the', 'det', 5),
    ('bed', 'NOUN', 'NN', 'bed', 'pobj', 3),
]


def test_copula_keeps_bare_preposition():
    g = graph(COPULA_KEEPS_BARE_PREPOSITION)
    assert g == {'objects': ['bed', 'cat'], 'attributes': [], 'relations': [['cat', 'on', 'bed']]}


# woman with a cat
NOUN_WITH = [
    ('woman', 'NOUN', 'NN', 'woman', 'ROOT', 0),
    ('with', 'ADP', 'IN', 'with', 'prep', 0),
    ('a', 'DET', 'DT', 'a', 'det', 3),
    ('cat', 'NOUN', 'NN', 'cat', 'pobj', 1),
]


def test_noun_with():
    g = graph(NOUN_WITH)
    assert g == {'objects': ['cat', 'woman'], 'attributes': [], 'relations': [['woman', 'with', 'cat']]}


# man with a hat
WITH_CLOTHING_IS_WEAR = [
    ('man', 'NOUN', 'NN', 'man', 'ROOT', 0),
    ('with', 'ADP', 'IN', 'with', 'prep', 0),
    ('a', 'DET', 'DT', 'a', 'det', 3),
    ('hat', 'NOUN', 'NN', 'hat', 'pobj', 1),
]


def test_with_clothing_is_wear():
    g = graph(WITH_CLOTHING_IS_WEAR)
    assert g == {'objects': ['hat', 'man'], 'attributes': [], 'relations': [['man', 'wear', 'hat']]}


# man in a red shirt
IN_CLOTHING_IS_WEAR = [
    ('man', 'NOUN', 'NN', 'man', 'ROOT', 0),
    ('in', 'ADP', 'IN', 'in', 'prep', 0),
    ('a', 'DET', 'DT', 'a', 'det', 4),
    ('red', 'ADJ', 'JJ', 'red', 'amod', 4),
    ('shirt', 'NOUN', 'NN', 'shirt', 'pobj', 1),
]


def test_in_clothing_is_wear():
    g = graph(IN_CLOTHING_IS_WEAR)
    assert g == {'objects': ['man', 'shirt'], 'attributes': [['shirt', 'red']], 'relations': [['man', 'wear', 'shirt']]}


# lamp on top of the table
MULTIWORD_ON_TOP_OF = [
    ('lamp', 'NOUN', 'NN', 'lamp', 'ROOT', 0),
    ('on', 'ADP', 'IN', 'on', 'prep', 0),
    ('top', 'NOUN', 'NN', 'top', 'pobj', 1),
    ('of', 'ADP', 'IN', 'of', 'prep', 2),
    ('the', 'DET', 'DT', 'the', 'det', 5),
    ('table', 'NOUN', 'NN', 'table', 'pobj', 3),
]


def test_multiword_on_top_of():
    g = graph(MULTIWORD_ON_TOP_OF)
    assert g == {'objects': ['lamp', 'table'], 'attributes': [], 'relations': [['lamp', 'on top of', 'table']]}


# car in front of the building
MULTIWORD_IN_FRONT_OF = [
    ('car', 'NOUN', 'NN', 'car', 'ROOT', 0),
    ('in', 'ADP', 'IN', 'in', 'prep', 0),
    ('front', 'NOUN', 'NN', 'front', 'pobj', 1),
    ('of', 'ADP', 'IN', 'of', 'prep', 2),
    ('the', 'DET', 'DT', 'the', 'det', 5),
    ('building', 'NOUN', 'NN', 'building', 'pobj', 3),
]


def test_multiword_in_front_of():
    g = graph(MULTIWORD_IN_FRONT_OF)
    assert g == {'objects': ['building', 'car'], 'attributes': [], 'relations': [['car', 'in front of', 'building']]}


# dog next to a cat
MULTIWORD_NEXT_TO = [
    ('dog', 'NOUN', 'NN', 'dog', 'ROOT', 0),
    ('next', 'ADV', 'RB', 'next', 'advmod', 0),
    ('to', 'ADP', 'IN', 'to', 'prep', 1),
    ('a', 'DET', 'DT', 'a', 'det', 4),
    ('cat', 'NOUN', 'NN', 'cat', 'pobj', 2),
]


def test_multiword_next_to():
    g = graph(MULTIWORD_NEXT_TO)
    assert g == {'objects': ['cat', 'dog'], 'attributes': [], 'relations': [['dog', 'next to', 'cat']]}


# cup sitting on the right side of the table
MULTIWORD_RIGHT_SIDE_OF = [
    ('cup', 'NOUN', 'NN', 'cup', 'ROOT', 0),
    ('sitting', 'VERB', 'VBG', 'sit', 'acl', 0),
    ('on', 'ADP', 'IN', 'on', 'prep', 1),
    ('the', 'DET', 'DT', 'the', 'det', 5),
    ('right', 'ADJ', 'JJ', 'right', 'amod', 5),
    ('side', 'NOUN', 'NN', 'side', 'pobj', 2),
    ('of', 'ADP', 'IN', 'of', 'prep', 5),
    ('the', 'DET', 'DT', 'the', 'det', 8),
    ('table', 'NOUN', 'NN', 'table', 'pobj', 6),
]


def test_multiword_right_side_of():
    g = graph(MULTIWORD_RIGHT_SIDE_OF)
    assert g == {'objects': ['cup', 'table'], 'attributes': [], 'relations': [['cup', 'sit on the right side of', 'table']]}


# a shelf filled with books
PASSIVE_PARTICIPLE = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('shelf', 'NOUN', 'NN', 'shelf', 'ROOT', 1),
    ('filled', 'VERB', 'VBN', 'fill', 'acl', 1),
    ('with', 'ADP', 'IN', 'with', 'prep', 2),
    ('books', 'NOUN', 'NNS', 'book', 'pobj', 3),
]


def test_passive_participle():
    g = graph(PASSIVE_PARTICIPLE)
    assert g == {'objects': ['book', 'shelf'], 'attributes': [], 'relations': [['shelf', 'fill with', 'book']]}


# a table covered in food
PASSIVE_COVER_FOLLOWS_FACTUAL = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('table', 'NOUN', 'NN', 'table', 'ROOT', 1),
    ('covered', 'VERB', 'VBN', 'cover', 'acl', 1),
    ('in', 'ADP', 'IN', 'in', 'prep', 2),
    ('food', 'NOUN', 'NN', 'food', 'pobj', 3),
]


def test_passive_cover_follows_factual():
    g = graph(PASSIVE_COVER_FOLLOWS_FACTUAL)
    assert g == {'objects': ['food', 'table'], 'attributes': [], 'relations': [['food', 'cover', 'table']]}


# the sand that is covered by water
PASSIVE_AGENT = [
    ('the', 'DET', 'DT', 'the', 'det', 1),
    ('sand', 'NOUN', 'NN', 'sand', 'ROOT', 1),
    ('that', 'PRON', 'WDT', 'that', 'nsubjpass', 4),
    ('is', 'AUX', 'VBZ', 'be', 'auxpass', 4),
    ('covered', 'VERB', 'VBN', 'cover', 'relcl', 1),
    ('by', 'ADP', 'IN', 'by', 'agent', 4),
    ('water', 'NOUN', 'NN', 'water', 'pobj', 5),
]


def test_passive_agent():
    g = graph(PASSIVE_AGENT)
    assert g == {'objects': ['sand', 'water'], 'attributes': [], 'relations': [['water', 'cover', 'sand']]}


# a man who is holding a cup
RELATIVE_CLAUSE_SUBJECT = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('man', 'NOUN', 'NN', 'man', 'ROOT', 1),
    ('who', 'PRON', 'WP', 'who', 'nsubj', 4),
    ('is', 'AUX', 'VBZ', 'be', 'aux', 4),
    ('holding', 'VERB', 'VBG', 'hold', 'relcl', 1),
    ('a', 'DET', 'DT', 'a', 'det', 6),
    ('cup', 'NOUN', 'NN', 'cup', 'dobj', 4),
]


def test_relative_clause_subject():
    g = graph(RELATIVE_CLAUSE_SUBJECT)
    assert g == {'objects': ['cup', 'man'], 'attributes': [], 'relations': [['man', 'hold', 'cup']]}


# the grass that the bag is on
RELATIVE_CLAUSE_OBJECT = [
    ('the', 'DET', 'DT', 'the', 'det', 1),
    ('grass', 'NOUN', 'NN', 'grass', 'ROOT', 1),
    ('that', 'PRON', 'WDT', 'that', 'pobj', 6),
    ('the', 'DET', 'DT', 'the', 'det', 4),
    ('bag', 'NOUN', 'NN', 'bag', 'nsubj', 5),
    ('is', 'AUX', 'VBZ', 'be', 'relcl', 1),
    ('on', 'ADP', 'IN', 'on', 'prep', 5),
]


def test_relative_clause_object():
    g = graph(RELATIVE_CLAUSE_OBJECT)
    assert g == {'objects': ['bag', 'grass'], 'attributes': [], 'relations': [['bag', 'on', 'grass']]}


# a man and a woman on a bench
CONJUNCTION_DISTRIBUTES_NO_MUTUAL_RELATION = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('man', 'NOUN', 'NN', 'man', 'ROOT', 1),
    ('and', 'CCONJ', 'CC', 'and', 'cc', 1),
    ('a', 'DET', 'DT', 'a', 'det', 4),
    ('woman', 'NOUN', 'NN', 'woman', 'conj', 1),
    ('on', 'ADP', 'IN', 'on', 'prep', 4),
    ('a', 'DET', 'DT', 'a', 'det', 7),
    ('bench', 'NOUN', 'NN', 'bench', 'pobj', 5),
]


def test_conjunction_distributes_no_mutual_relation():
    g = graph(CONJUNCTION_DISTRIBUTES_NO_MUTUAL_RELATION)
    assert g == {'objects': ['bench', 'man', 'woman'], 'attributes': [], 'relations': [['man', 'on', 'bench'], ['woman', 'on', 'bench']]}


# fence between a giraffe and a person
CONJOINED_OBJECTS = [
    ('fence', 'NOUN', 'NN', 'fence', 'ROOT', 0),
    ('between', 'ADP', 'IN', 'between', 'prep', 0),
    ('a', 'DET', 'DT', 'a', 'det', 3),
    ('giraffe', 'NOUN', 'NN', 'giraffe', 'pobj', 1),
    ('and', 'CCONJ', 'CC', 'and', 'cc', 3),
    ('a', 'DET', 'DT', 'a', 'det', 6),
    ('person', 'NOUN', 'NN', 'person', 'conj', 3),
]


def test_conjoined_objects():
    g = graph(CONJOINED_OBJECTS)
    assert g == {'objects': ['fence', 'giraffe', 'person'], 'attributes': [], 'relations': [['fence', 'between', 'giraffe'], ['fence', 'between', 'person']]}


# the man 's hat
POSSESSIVE_S = [
    ('the', 'DET', 'DT', 'the', 'det', 1),
    ('man', 'NOUN', 'NN', 'man', 'poss', 3),
    ("'s", 'PART', 'POS', "'s", 'case', 1),
    ('hat', 'NOUN', 'NN', 'hat', 'ROOT', 3),
]


def test_possessive_s():
    g = graph(POSSESSIVE_S)
    assert g == {'objects': ['hat', 'man'], 'attributes': [], 'relations': [['man', 'have', 'hat']]}


# the leg of the man
POSSESSIVE_OF = [
    ('the', 'DET', 'DT', 'the', 'det', 1),
    ('leg', 'NOUN', 'NN', 'leg', 'ROOT', 1),
    ('of', 'ADP', 'IN', 'of', 'prep', 1),
    ('the', 'DET', 'DT', 'the', 'det', 4),
    ('man', 'NOUN', 'NN', 'man', 'pobj', 2),
]


def test_possessive_of():
    g = graph(POSSESSIVE_OF)
    assert g == {'objects': ['leg', 'man'], 'attributes': [], 'relations': [['man', 'have', 'leg']]}


# a plate of food
OF_CONTAINER = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('plate', 'NOUN', 'NN', 'plate', 'ROOT', 1),
    ('of', 'ADP', 'IN', 'of', 'prep', 1),
    ('food', 'NOUN', 'NN', 'food', 'pobj', 2),
]


def test_of_container():
    g = graph(OF_CONTAINER)
    assert g == {'objects': ['food', 'plate'], 'attributes': [], 'relations': [['food', 'on', 'plate']]}


# there are tires in the ocean
THERE_IS = [
    ('there', 'PRON', 'EX', 'there', 'expl', 1),
    ('are', 'VERB', 'VBP', 'be', 'ROOT', 1),
    ('tires', 'NOUN', 'NNS', 'tire', 'attr', 1),
    ('in', 'ADP', 'IN', 'in', 'prep', 2),
    ('the', 'DET', 'DT', 'the', 'det', 5),
    ('ocean', 'NOUN', 'NN', 'ocean', 'pobj', 3),
]


def test_there_is():
    g = graph(THERE_IS)
    assert g == {'objects': ['ocean', 'tire'], 'attributes': [], 'relations': [['tire', 'in', 'ocean']]}


# the elephant is opening its mouth
POSSESSIVE_PRONOUN_RESOLVED = [
    ('the', 'DET', 'DT', 'the', 'det', 1),
    ('elephant', 'NOUN', 'NN', 'elephant', 'nsubj', 3),
    ('is', 'AUX', 'VBZ', 'be', 'aux', 3),
    ('opening', 'VERB', 'VBG', 'open', 'ROOT', 3),
    ('its', 'PRON', 'PRP$', 'its', 'poss', 5),
    ('mouth', 'NOUN', 'NN', 'mouth', 'dobj', 3),
]


def test_possessive_pronoun_resolved():
    g = graph(POSSESSIVE_PRONOUN_RESOLVED)
    assert g == {'objects': ['elephant', 'mouth'], 'attributes': [], 'relations': [['elephant', 'have', 'mouth'], ['elephant', 'open', 'mouth']]}


# a dog that is eating as it walks on grass
SUBJECT_PRONOUN_RESOLVED = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('dog', 'NOUN', 'NN', 'dog', 'ROOT', 1),
    ('that', 'PRON', 'WDT', 'that', 'nsubj', 4),
    ('is', 'AUX', 'VBZ', 'be', 'aux', 4),
    ('eating', 'VERB', 'VBG', 'eat', 'relcl', 1),
    ('as', 'SCONJ', 'IN', 'as', 'mark', 7),
    ('it', 'PRON', 'PRP', 'it', 'nsubj', 7),
    ('walks', 'VERB', 'VBZ', 'walk', 'advcl', 4),
    ('on', 'ADP', 'IN', 'on', 'prep', 7),
    ('grass', 'NOUN', 'NN', 'grass', 'pobj', 8),
]


def test_subject_pronoun_resolved():
    g = graph(SUBJECT_PRONOUN_RESOLVED)
    assert g == {'objects': ['dog', 'grass'], 'attributes': [], 'relations': [['dog', 'walk on', 'grass']]}


# two dogs playing in the park
QUANTITY_NOT_ATTRIBUTE = [
    ('two', 'NUM', 'CD', 'two', 'nummod', 1),
    ('dogs', 'NOUN', 'NNS', 'dog', 'ROOT', 1),
    ('playing', 'VERB', 'VBG', 'play', 'acl', 1),
    ('in', 'ADP', 'IN', 'in', 'prep', 2),
    ('the', 'DET', 'DT', 'the', 'det', 5),
    ('park', 'NOUN', 'NN', 'park', 'pobj', 3),
]


def test_quantity_not_attribute():
    g = graph(QUANTITY_NOT_ATTRIBUTE)
    assert g == {'objects': ['dog', 'park'], 'attributes': [], 'relations': [['dog', 'play in', 'park']]}


# a blue and white sign on a wooden pole
ADJECTIVES_AND_CONJOINED_ADJECTIVES = [
    ('a', 'DET', 'DT', 'a', 'det', 4),
    ('blue', 'ADJ', 'JJ', 'blue', 'amod', 4),
    ('and', 'CCONJ', 'CC', 'and', 'cc', 1),
    ('white', 'ADJ', 'JJ', 'white', 'conj', 1),
    ('sign', 'NOUN', 'NN', 'sign', 'ROOT', 4),
    ('on', 'ADP', 'IN', 'on', 'prep', 4),
    ('a', 'DET', 'DT', 'a', 'det', 8),
    ('wooden', 'ADJ', 'JJ', 'wooden', 'amod', 8),
    ('pole', 'NOUN', 'NN', 'pole', 'pobj', 5),
]


def test_adjectives_and_conjoined_adjectives():
    g = graph(ADJECTIVES_AND_CONJOINED_ADJECTIVES)
    assert g == {'objects': ['pole', 'sign'], 'attributes': [['pole', 'wooden'], ['sign', 'blue'], ['sign', 'white']], 'relations': [['sign', 'on', 'pole']]}


# the shirt is red
COPULA_ADJECTIVE = [
    ('the', 'DET', 'DT', 'the', 'det', 1),
    ('shirt', 'NOUN', 'NN', 'shirt', 'nsubj', 2),
    ('is', 'AUX', 'VBZ', 'be', 'ROOT', 2),
    ('red', 'ADJ', 'JJ', 'red', 'acomp', 2),
]


def test_copula_adjective():
    g = graph(COPULA_ADJECTIVE)
    assert g == {'objects': ['shirt'], 'attributes': [['shirt', 'red']], 'relations': []}


# two bicycles parked
BARE_PARTICIPLE_ATTRIBUTE = [
    ('two', 'NUM', 'CD', 'two', 'nummod', 1),
    ('bicycles', 'NOUN', 'NNS', 'bicycle', 'nsubj', 2),
    ('parked', 'VERB', 'VBN', 'park', 'ROOT', 2),
]


def test_bare_participle_attribute():
    g = graph(BARE_PARTICIPLE_ATTRIBUTE)
    assert g == {'objects': ['bicycle'], 'attributes': [['bicycle', 'parked']], 'relations': []}


# train tracks near a brick wall
COMPOUND_NAME_AND_MATERIAL = [
    ('train', 'NOUN', 'NN', 'train', 'compound', 1),
    ('tracks', 'NOUN', 'NNS', 'track', 'ROOT', 1),
    ('near', 'ADP', 'IN', 'near', 'prep', 1),
    ('a', 'DET', 'DT', 'a', 'det', 5),
    ('brick', 'NOUN', 'NN', 'brick', 'compound', 5),
    ('wall', 'NOUN', 'NN', 'wall', 'pobj', 2),
]


def test_compound_name_and_material():
    g = graph(COMPOUND_NAME_AND_MATERIAL)
    assert g == {'objects': ['train track', 'wall'], 'attributes': [['wall', 'brick']], 'relations': [['train track', 'near', 'wall']]}


# a group of people on motorcycles
QUANTIFIER_NOUN = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('group', 'NOUN', 'NN', 'group', 'ROOT', 1),
    ('of', 'ADP', 'IN', 'of', 'prep', 1),
    ('people', 'NOUN', 'NNS', 'people', 'pobj', 2),
    ('on', 'ADP', 'IN', 'on', 'prep', 3),
    ('motorcycles', 'NOUN', 'NNS', 'motorcycle', 'pobj', 4),
]


def test_quantifier_noun():
    g = graph(QUANTIFIER_NOUN)
    assert g == {'objects': ['motorcycle', 'people'], 'attributes': [['people', 'group of']], 'relations': [['people', 'on', 'motorcycle']]}


# a piece of paper on the keyboard
PIECE_OF = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('piece', 'NOUN', 'NN', 'piece', 'ROOT', 1),
    ('of', 'ADP', 'IN', 'of', 'prep', 1),
    ('paper', 'NOUN', 'NN', 'paper', 'pobj', 2),
    ('on', 'ADP', 'IN', 'on', 'prep', 1),
    ('the', 'DET', 'DT', 'the', 'det', 6),
    ('keyboard', 'NOUN', 'NN', 'keyboard', 'pobj', 4),
]


def test_piece_of():
    g = graph(PIECE_OF)
    assert g == {'objects': ['keyboard', 'paper'], 'attributes': [['paper', 'piece']], 'relations': [['paper', 'on', 'keyboard']]}


# a dark green jacket
SHADE_COLOUR = [
    ('a', 'DET', 'DT', 'a', 'det', 3),
    ('dark', 'ADJ', 'JJ', 'dark', 'amod', 2),
    ('green', 'ADJ', 'JJ', 'green', 'amod', 3),
    ('jacket', 'NOUN', 'NN', 'jacket', 'ROOT', 3),
]


def test_shade_colour():
    g = graph(SHADE_COLOUR)
    assert g == {'objects': ['jacket'], 'attributes': [['jacket', 'dark green']], 'relations': []}


# a tree branch
COMPOUND_OWNER = [
    ('a', 'DET', 'DT', 'a', 'det', 2),
    ('tree', 'NOUN', 'NN', 'tree', 'compound', 2),
    ('branch', 'NOUN', 'NN', 'branch', 'ROOT', 2),
]


def test_compound_owner():
    g = graph(COMPOUND_OWNER)
    assert g == {'objects': ['branch', 'tree'], 'attributes': [], 'relations': [['tree', 'have', 'branch']]}


# the t - shirt is red
HYPHENATED_COMPOUND = [
    ('the', 'DET', 'DT', 'the', 'det', 3),
    ('t', 'NOUN', 'NN', 't', 'compound', 3),
    ('-', 'PUNCT', 'HYPH', '-', 'punct', 3),
    ('shirt', 'NOUN', 'NN', 'shirt', 'nsubj', 4),
    ('is', 'AUX', 'VBZ', 'be', 'ROOT', 4),
    ('red', 'ADJ', 'JJ', 'red', 'acomp', 4),
]


def test_hyphenated_compound():
    g = graph(HYPHENATED_COMPOUND)
    assert g == {'objects': ['t-shirt'], 'attributes': [['t-shirt', 'red']], 'relations': []}


# a cat lying on a couch
LIE_ON = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('cat', 'NOUN', 'NN', 'cat', 'ROOT', 1),
    ('lying', 'VERB', 'VBG', 'lie', 'acl', 1),
    ('on', 'ADP', 'IN', 'on', 'prep', 2),
    ('a', 'DET', 'DT', 'a', 'det', 5),
    ('couch', 'NOUN', 'NN', 'couch', 'pobj', 3),
]


def test_lie_on():
    g = graph(LIE_ON)
    assert g == {'objects': ['cat', 'couch'], 'attributes': [], 'relations': [['cat', 'lay on', 'couch']]}



# ----------------------------------------------------------------------- structure-level checks

def test_quantity_goes_to_object_not_attributes():
    g = doc_to_scene_graph(make_doc(QUANTITY_NOT_ATTRIBUTE))
    dog = next(o for o in g.objects if o.head == "dog")
    assert dog.quantity == "two"
    assert dog.name == "dogs" and dog.span == (1, 2) and dog.lemma == "dog"
    assert not g.attributes


def test_compound_name_span_and_head():
    g = doc_to_scene_graph(make_doc(COMPOUND_NAME_AND_MATERIAL))
    track = g.objects[0]
    assert (track.name, track.span, track.lemma, track.head) == ("train tracks", (0, 2), "train track", "track")
    wall = next(o for o in g.objects if o.head == "wall")
    assert wall.span == (5, 6)
    brick = next(a for a in g.attributes if a.value == "brick")
    assert brick.span == (4, 5) and g.objects[brick.object] is wall


def test_conjoined_nouns_are_not_related():
    g = graph(CONJUNCTION_DISTRIBUTES_NO_MUTUAL_RELATION)
    assert not any({r[0], r[2]} == {"man", "woman"} for r in g["relations"])


def test_pronouns_never_objects():
    for toks in (POSSESSIVE_PRONOUN_RESOLVED, SUBJECT_PRONOUN_RESOLVED, RELATIVE_CLAUSE_SUBJECT):
        names = set(graph(toks)["objects"])
        assert not names & {"it", "its", "who", "that", "his", "he", "they"}


def test_token_analyses_filled():
    g = doc_to_scene_graph(make_doc(VERB_PREPOSITION_MERGED))
    assert g.tokens == ["a", "cat", "sitting", "on", "a", "bed"]
    assert g.lemmas == ["a", "cat", "sit", "on", "a", "bed"]
    assert g.heads == [1, 1, 1, 2, 5, 3]
    assert g.deps == ["det", "ROOT", "acl", "prep", "det", "pobj"]
    rel = g.relations[0]
    assert (g.objects[rel.subject].name, rel.predicate, g.objects[rel.object].name) == ("cat", "sit on", "bed")
    assert rel.span == (2, 4)


def test_span_input_offsets_are_relative():
    doc = make_doc([("hello", "INTJ", "UH", "hello", "ROOT", 0)] +
                   [(w, p, t, l, d, h + 1) for (w, p, t, l, d, h) in VERB_DIRECT_OBJECT])
    g = doc_to_scene_graph(doc[1:])
    assert g.to_dict()["relations"] == [["man", "ride", "horse"]]
    assert g.objects[0].span == (0, 1) and g.heads == [0, 0, 3, 1]


def test_empty_doc_has_note():
    g = doc_to_scene_graph(Doc(_VOCAB, words=[]))
    assert g.tokens == [] and not g.objects and g.note


def test_no_nouns_has_note():
    g = doc_to_scene_graph(make_doc([("hello", "INTJ", "UH", "hello", "ROOT", 0)]))
    assert not g.objects and g.note == "no objects found"


# a man walking up the stairs ("up" is the verb's particle and the head of "stairs")
PARTICLE_HEADS_OBJECT = [
    ('a', 'DET', 'DT', 'a', 'det', 1),
    ('man', 'NOUN', 'NN', 'man', 'ROOT', 1),
    ('walking', 'VERB', 'VBG', 'walk', 'acl', 1),
    ('up', 'ADP', 'RP', 'up', 'prt', 2),
    ('the', 'DET', 'DT', 'the', 'det', 5),
    ('stairs', 'NOUN', 'NNS', 'stair', 'pobj', 3),
]

# water dripping down from cliff ("from" hangs off the particle "down")
PARTICLE_BEFORE_PREPOSITION = [
    ('water', 'NOUN', 'NN', 'water', 'ROOT', 0),
    ('dripping', 'VERB', 'VBG', 'drip', 'amod', 0),
    ('down', 'ADP', 'RP', 'down', 'prt', 1),
    ('from', 'ADP', 'IN', 'from', 'prep', 2),
    ('cliff', 'NOUN', 'NN', 'cliff', 'pobj', 3),
]

# giraffes on ground , on grass (the second "on" attached to the first)
REPEATED_PREPOSITION = [
    ('giraffes', 'NOUN', 'NNS', 'giraffe', 'ROOT', 0),
    ('on', 'ADP', 'IN', 'on', 'prep', 0),
    ('ground', 'NOUN', 'NN', 'ground', 'pobj', 1),
    (',', 'PUNCT', ',', ',', 'punct', 1),
    ('on', 'ADP', 'IN', 'on', 'prep', 1),
    ('grass', 'NOUN', 'NN', 'grass', 'pobj', 4),
]


def test_particle_in_the_preposition_chain_is_not_doubled():
    assert rels(PARTICLE_HEADS_OBJECT) == {('man', 'walk up', 'stair')}
    assert rels(PARTICLE_BEFORE_PREPOSITION) == {('water', 'drip down from', 'cliff')}


def test_repeated_preposition_is_read_once():
    assert rels(REPEATED_PREPOSITION) == {('giraffe', 'on', 'ground'), ('giraffe', 'on', 'grass')}
