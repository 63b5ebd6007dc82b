"""Dependency rules: a spaCy ``Doc`` (or ``Span``) → :class:`graphmatch.structures.SceneGraph`.

The rules read only token-level analyses (``text``, ``lemma_``, ``pos_``, ``tag_``, ``dep_``,
``head``; spaCy's English ClearNLP label set) and word lists from :mod:`parsers.lexicon`, so they
can be tested on hand-built ``Doc`` objects independently of the statistical model.

Constructions and conventions (the target is the FACTUAL annotation of Visual Genome captions):

* **Objects** — every noun (``NOUN`` / ``PROPN``, plus indefinite pronouns such as ``someone`` →
  ``person``) that is not itself a compound modifier of another noun. The name covers the head and
  its (contiguous) ``compound`` modifiers: ``"train tracks"`` (span of both words, lemma
  ``"train track"``, head ``"track"``). Compound modifiers that FACTUAL records as attributes
  (materials and sorts: ``"brick wall"`` → ``wall`` + attribute ``brick``) are listed in
  ``lexicon.COMPOUND_ATTRIBUTES``. Nouns FACTUAL practically never keeps as objects
  (``"background"``, ``"picture"`` …, ``lexicon.NON_OBJECTS``) are dropped.
* **Instances** — the graph keeps one object per mention (noun phrase): ``"an old person kisses
  a young person"`` has two ``person`` objects, each with its own attribute, and a ``kiss``
  relation between them. Mentions are joined only where the text says they are one entity:

  - *pronouns* (``he`` / ``him`` / ``his``, ``she`` / ``her``, ``it`` / ``its``, ``they`` /
    ``them`` / ``their``) refer to the nearest previous compatible mention, tried in tiers:
    ``he`` a male person noun (``lexicon.MALE_NOUNS``), then any person not female
    (``lexicon.PERSON_NOUNS``), then an animal (``lexicon.ANIMAL_NOUNS``); ``she`` the same with
    female; ``it`` a singular non-person; ``they`` a plural person, animal or thing, else the
    nearest coordinated series (``"a man and a woman with their dog"``: both), else a singular
    person (singular *they*). Within the first tier that has a candidate, the subject of the
    pronoun's clause wins over the nearest one (``"an elephant eating hay with its trunk"``:
    the elephant). A pronoun never refers to the other argument of its own relation (``"a
    plate with a sandwich on it"``: the plate) or to the noun it possesses; with no earlier
    candidate, the nearest later one (``"his umbrella next to a man"``). ``"X with Y on it"``
    gives ``(Y, on, X)`` also where the parser attaches ``on it`` to ``X``. Reflexives,
    demonstratives and relative pronouns keep the clause rules below.
  - *definite or bare repeats* (``"a man ... the man"``): a mention without an indefinite
    determiner (``a``, ``an``, ``some``, ``one`` ...) and without a word that marks a new
    entity (``another``, ``other``, ``second`` ...; ``lexicon.NEW_ENTITY_WORDS``) is the most
    recent earlier entity of the same name and number whose modifiers include all of its own
    (adjectives, numbers, prepositional phrases, clauses, possessors): ``"the girl in white ...
    the girl in blue"`` are two girls, ``"the girl in white ... the girl"`` one. Two mentions
    related to each other are never joined (``"the dog chases the dog"``: two dogs).
  - everything else is a new entity (``"a man ... a man"``, ``"another man"``).

  FACTUAL annotates one object per name; :func:`graphmatch.structures.merge_instances` gives
  that view (what ``graphmatch eval-parser`` scores).
* **Distinguishing phrases** — ``"on / to / at the left / right"`` without ``of`` is the
  attribute ``"on the left"`` (FACTUAL's value); ``"in <colour>"`` (``"the girl in white"``)
  is the attribute ``white`` of the noun (after a verb's object: of that object, where the
  parser attaches the phrase to the verb).
* **Quantities** — ``nummod`` numbers (``"two dogs"``) go to :attr:`SGObject.quantity`, never to
  attributes. Quantifier nouns before ``of`` (``"group of people"``, ``"piece of cake"``) are not
  objects: the ``of`` complement takes their place in the sentence, and FACTUAL's quantifier-like
  attribute value is attached when it has one (``"group of"``, ``"piece"``, ``"slice"``; ``"pair"``,
  ``"row"`` … add nothing) — ``lexicon.QUANTIFIER_NOUNS``.
* **Attributes** — ``amod`` adjectives and participles (``"parked"``, ``"wooden"``, ``"striped"``)
  with their ``conj`` siblings (``"blue and white"``), copular complements (``"the shirt is
  red"``), and intransitive participles that describe their subject without an object (``"a boy
  skating"``, ``"two bicycles parked"``; a present-tense verb without complements, ``"... and it
  sleeps"``, gives its lemma ``sleep``) — values are the lower-cased surface words, as FACTUAL
  writes them. Participles with their own complements are relations, not attributes.
* **Relations** — ``(subject, predicate, object)``:

  - verb + direct object: ``"man riding a horse"`` → ``(man, ride, horse)``;
  - verb + preposition, merged: ``"a cat sitting on a bed"`` → ``(cat, sit on, bed)``; the copula
    leaves the preposition alone (``"the cat is on the bed"`` → ``(cat, on, bed)``);
  - noun + preposition: ``"woman with a cat"`` → ``(woman, with, cat)``; before clothing FACTUAL
    writes ``wear`` for ``in`` / ``with`` (``"man in a red shirt"``, ``"man with a hat"`` →
    ``(man, wear, …)``; ``lexicon.CLOTHING``);
  - multiword prepositions: relational nouns (``top``, ``front``, ``side`` …,
    ``lexicon.RELATIONAL_NOUNS``) followed by ``of`` are folded into the predicate
    (``"on top of"``, ``"in front of"``, ``"on the right side of"``), as are adverbs before a
    preposition (``"next to"``, ``"out of"``, ``"close to"``);
  - passives: ``"a shelf filled with books"`` → ``(shelf, fill with, books)``; an agent is the
    subject (``"sand covered by water"`` → ``(water, cover, sand)``). FACTUAL turns some passives
    round, and the rules follow it through ``lexicon.PREDICATE_MAP``: ``"a table covered in
    food"`` → ``(food, cover, table)`` (not ``(table, cover in, food)``);
  - relative clauses: the head noun fills the relative pronoun's role (``"a man who is holding a
    cup"`` → ``(man, hold, cup)``; ``"the grass that the bag is on"`` → ``(bag, on, grass)``);
  - conjunctions distribute over subjects and objects, and a modifier attached to the last of a
    coordinated series of nouns applies to all of them (``"a man and a woman on a bench"``: both
    on the bench); conjoined nouns are never related to each other;
  - possessives: ``"the man's hat"`` and ``"the leg of the man"`` → ``(man, have, hat / leg)``;
    for a few container / support nouns FACTUAL uses a spatial predicate instead (``"plate of
    food"`` → ``(food, on, plate)``, ``lexicon.OF_RELATIONS``);
  - ``"there is / are X ..."``: ``X`` is the subject of what follows;
  - pronouns (``it``, ``they``, ``his`` …) are never objects: personal pronouns are resolved
    as described under *Instances*; a reflexive or demonstrative possessive / subject pronoun
    to the subject of its clause, or else to the first object of the caption; a pronoun left
    unresolved is dropped together with its relation;
  - ``"taking a picture of X"`` (picture nouns, which are not objects) → ``(taker, take
    picture of, X)``.

  - compounds that name an owner become a ``have`` relation (``"tree branch"`` →
    ``(tree, have, branch)``, ``lexicon.COMPOUND_OWNERS``).

  Predicates are verb lemmas plus particles and prepositions, lower-cased, then mapped to
  FACTUAL's forms with ``lexicon.PREDICATE_MAP`` (derived from train: e.g. ``"lie on"`` →
  ``"lay on"``, ``"beneath"`` → ``"under"``, ``"in the middle of"`` → ``"on middle of"``;
  the model's ``"rid"`` for *riding* → ``"ride"``).
* **Names** — a few object names are mapped to FACTUAL's (``"guy"`` → ``"person"``, ``"tshirt"``
  → ``"t-shirt"``; ``lexicon.NAME_MAP``); a shade before a colour makes one attribute value
  (``"dark green"``); adjectives that form a fixed name stay in it (``"hot dog"``).
* **Tokens** — the graph keeps spaCy's tokens, with ``text`` the text of the ``Doc`` / ``Span``
  and ``offsets`` each token's ``[start, end)`` characters in it (``token.idx``; relative to the
  start of a ``Span``).

Deviations. FACTUAL annotators sometimes add relations that are only implied (``"man and woman
talking"`` → ``(woman, talk to, man)``), spell out intransitive verbs as attributes with their
particles (``"laying down"``) and correct typos; the rules do none of that. Compared with
``sng_parser``: objects come from nouns rather than noun chunks (so compounds inside chunks and
nouns in ``of`` phrases are found), numbers are quantities instead of modifiers, passives,
relative clauses, possessives and quantifier nouns are handled, and predicates follow FACTUAL's
lemmatised verb+preposition convention.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Set, Tuple

from graphmatch.structures import SceneGraph, SGAttribute, SGObject, SGRelation

from . import lexicon as L

__all__ = ["doc_to_scene_graph", "RULES_VERSION"]

#: Hand-set rules version, shown in the parser's ``version``. The version also holds a hash of the
#: rules, lexicon and text-cleaning sources (``parsers.parser.SOURCE_HASH``), so any edit to them
#: changes the cache key without a bump here.
RULES_VERSION = "2"

_NOUN_POS = {"NOUN", "PROPN"}
_VERB_POS = {"VERB", "AUX"}
_SUBJ = {"nsubj", "nsubjpass", "csubj"}
_OBJ = {"dobj", "obj", "dative", "oprd"}
_PREP_DEPS = {"prep", "agent", "dative"}
_ATTR_MOD = {"amod", "nmod", "acomp"}
_REL_PRON = {"that", "which", "who", "whom", "whose", "where"}
_POSS_PRON = {"his", "her", "its", "their", "my", "our", "your", "hers", "theirs"}
_PERS_PRON = {"he", "she", "it", "they", "him", "them", "i", "we", "you", "me", "us", "itself",
              "himself", "herself", "themselves", "this", "these", "those"}
_COPULA = {"be"}
_HE = {"he", "him", "his"}
_SHE = {"she", "her", "hers"}
_IT = {"it", "its"}
_THEY = {"they", "them", "their", "theirs"}
#: Personal pronouns resolved to the nearest compatible previous mention (reflexives keep the
#: clause rule: they refer to the subject).
_ANAPHORS = _HE | _SHE | _IT | _THEY
#: Verbs of saying, whose complement is a quotation (``"a sign that says stop"``), not attributes.
_SAYING = {"say", "read", "show", "write", "spell", "display", "state", "tell"}
#: Nouns of pictures: ``"taking a picture of X"`` relates the taker to ``X``.
_DEPICTIONS = {"picture", "photo", "photograph", "pic", "image", "selfie", "drawing", "painting", "video"}
_INDEFINITE = {"a", "an", "another", "some", "any", "each", "every", "no", "one", "several", "many", "few"}


class _Sent:
    """Flat token arrays of one ``Doc`` / ``Span`` (indices relative to its start)."""

    __slots__ = ("n", "text", "ws", "lower", "lemma", "pos", "tag", "dep", "head", "kids", "doc_text", "offsets")

    def __init__(self, doc: Any) -> None:
        toks = list(doc)
        off = toks[0].i if toks else 0
        n = len(toks)
        self.n = n
        self.text = [t.text for t in toks]
        # character offsets into the text of the Doc / Span (a Span's own text starts at start_char)
        base = getattr(doc, "start_char", 0)
        self.doc_text = doc.text
        self.offsets = [(t.idx - base, t.idx - base + len(t.text)) for t in toks]
        self.ws = [t.whitespace_ for t in toks]
        self.lower = [t.lower_ for t in toks]
        self.lemma = [(t.lemma_ or t.text).lower() for t in toks]
        self.pos = [t.pos_ for t in toks]
        self.tag = [t.tag_ for t in toks]
        self.dep = [t.dep_ for t in toks]
        head = []
        for k, t in enumerate(toks):
            h = t.head.i - off
            head.append(h if 0 <= h < n else k)
        self.head = head
        kids: List[List[int]] = [[] for _ in range(n)]
        for k, h in enumerate(head):
            if h != k:
                kids[h].append(k)
        self.kids = kids

    def kids_with(self, i: int, deps: Set[str]) -> List[int]:
        return [k for k in self.kids[i] if self.dep[k] in deps]

    def is_noun(self, i: int) -> bool:
        return self.pos[i] in _NOUN_POS or self.lower[i] in L.PRONOUN_OBJECTS

    def is_verb(self, i: int) -> bool:
        return self.pos[i] in _VERB_POS or self.tag[i].startswith("VB")

    def conjuncts(self, i: int) -> List[int]:
        """``i`` and its ``conj`` descendants (a coordinated series)."""
        out, stack = [], [i]
        while stack:
            k = stack.pop()
            out.append(k)
            stack.extend(c for c in self.kids[k] if self.dep[c] == "conj")
        return sorted(out)

    def series(self, i: int) -> List[int]:
        """All members of the coordinated series that ``i`` belongs to."""
        top = i
        while self.dep[top] == "conj" and self.head[top] != top:
            top = self.head[top]
        return self.conjuncts(top)

    def span_text(self, s: int, e: int) -> str:
        return "".join(self.text[k] + (self.ws[k] if k < e - 1 else "") for k in range(s, e)).strip()


class _Builder:
    """Applies the rules to one ``_Sent``."""

    def __init__(self, s: _Sent) -> None:
        self.s = s
        self.objects: List[SGObject] = []
        self.attrs: List[SGAttribute] = []
        self.rels: List[SGRelation] = []
        self.tok2obj: Dict[int, int] = {}   # token (head noun or proxy) -> object number
        self.obj_tok: List[int] = []        # object number -> its mention's head token
        self._antecedents: Dict[int, List[int]] = {}   # personal pronoun token -> objects it refers to
        self._resolving: Set[int] = set()
        self.name_tokens: Set[int] = set()
        self.relational: Set[int] = set()   # relational nouns folded into predicates
        self.quant_of: Dict[int, int] = {}  # quantifier noun -> its "of" complement noun
        self._attr_seen: Set[Tuple[int, str]] = set()
        self._rel_seen: Set[Tuple[int, str, int]] = set()
        self._merged: Set[int] = set()
        self._pending: List[Tuple[int, str, int, Tuple[int, int]]] = []

    # ------------------------------------------------------------------ objects
    def _is_relational(self, i: int) -> bool:
        s = self.s
        if s.lemma[i] not in L.RELATIONAL_NOUNS and s.lower[i] not in L.RELATIONAL_NOUNS:
            return False
        if s.dep[i] != "pobj" and not (s.dep[i] == "ROOT" or s.dep[i] == "npadvmod"):
            return False
        return any(s.lower[k] == "of" and s.dep[k] == "prep" and s.kids_with(k, {"pobj"})
                   for k in s.kids[i])

    def find_objects(self) -> None:
        s = self.s
        for i in range(s.n):
            if not s.is_noun(i):
                continue
            if s.dep[i] == "compound" and s.is_noun(s.head[i]) and s.head[i] != i:
                continue
            if s.dep[i] == "poss" and s.lower[i] in _POSS_PRON:
                continue
            if self._is_relational(i):
                self.relational.add(i)
                continue
            lem = s.lemma[i]
            if lem in L.QUANTIFIER_NOUNS or s.lower[i] in L.QUANTIFIER_NOUNS:
                of = [k for k in s.kids[i] if s.lower[k] == "of" and s.dep[k] == "prep"]
                comp = [c for k in of for c in s.kids_with(k, {"pobj"}) if s.is_noun(c)]
                if comp:
                    self.quant_of[i] = comp[0]
                    continue
            if lem in L.NON_OBJECTS or s.lower[i] in L.NON_OBJECTS:
                continue
            self._add_object(i)
        # quantifier nouns stand for their complement (follow chains: "a group of pieces of")
        for q, c in list(self.quant_of.items()):
            seen = {q}
            while c in self.quant_of and c not in seen:
                seen.add(c)
                c = self.quant_of[c]
            if c in self.tok2obj:
                o = self.tok2obj[c]
                self.tok2obj[q] = o
                val = L.QUANTIFIER_NOUNS.get(s.lemma[q], L.QUANTIFIER_NOUNS.get(s.lower[q]))
                if val:
                    self._add_attr(o, val, (q, q + 1))
                for k in s.kids[q]:   # "a large group of people": modifiers of the quantifier
                    if s.dep[k] == "nummod":
                        self.objects[o].quantity = self.objects[o].quantity or s.lower[k]

    def _compounds(self, i: int) -> List[int]:
        s = self.s
        out, stack = [], [i]
        while stack:
            k = stack.pop()
            for c in s.kids[k]:
                if s.dep[c] == "compound" and c < k:
                    out.append(c)
                    stack.append(c)
        return sorted(out)

    def _add_object(self, i: int) -> None:
        s = self.s
        comps = self._compounds(i)
        # the name grows leftwards over contiguous compounds; a compound that FACTUAL reads as an
        # attribute ("brick wall") or as an owner ("tree branch") stops it
        start = i
        split: Optional[int] = None
        for c in reversed(comps):
            if not (c == start - 1 or (c == start - 2 and s.tag[start - 1] == "HYPH")):
                break
            if start == i and (s.lower[c] in L.COMPOUND_ATTRIBUTES or s.lower[c] in L.COLOURS
                               or s.lower[c] in L.COMPOUND_OWNERS):
                split = c
                break
            start = c
        # adjectives that make a fixed name with the noun ("hot dog", "polar bear")
        for k in s.kids[i]:
            if k == start - 1 and s.dep[k] == "amod" and s.lower[k] in L.AMOD_NAMES:
                start = k
                self.name_tokens.add(k)
        if s.lower[i] in L.PRONOUN_OBJECTS:
            lemma_head = L.PRONOUN_OBJECTS[s.lower[i]]
            name = s.text[i]
        else:
            lemma_head = s.lemma[i]
            name = s.span_text(start, i + 1)
        lemma = self._join([s.lower[k] for k in range(start, i)] + [lemma_head], start)
        lemma = L.NAME_MAP.get(lemma, lemma)
        o = self._object(name, (start, i + 1), lemma_head, lemma, i)
        self.tok2obj[i] = o
        self.name_tokens.update(range(start, i + 1))
        if split is not None:
            self.name_tokens.add(split)
            left = [split] + self._compounds(split)
            if s.lower[split] in L.COMPOUND_OWNERS:
                lo = min(left)
                owner = self._object(s.span_text(lo, split + 1), (lo, split + 1), s.lemma[split],
                                     self._join([s.lower[k] for k in range(lo, split)] + [s.lemma[split]], lo),
                                     split)
                self.name_tokens.update(range(lo, split + 1))
                self._pending.append((owner, "have", o, (lo, i + 1)))
            else:
                for c in left:
                    self._add_attr(o, s.lower[c], (c, c + 1))

    def _join(self, words: List[str], start: int) -> str:
        """Words of consecutive tokens from ``start``, space-separated except around hyphens."""
        s = self.s
        out = ""
        for j, w in enumerate(words):
            k = start + j
            if j and not (s.tag[k] == "HYPH" or s.tag[k - 1] == "HYPH"):
                out += " "
            out += w
        return out

    def _object(self, name: str, span: Tuple[int, int], head: str, lemma: str, tok: int) -> int:
        """A new object for the mention whose head noun is token ``tok`` (one object per mention;
        coreferent mentions are joined at the end, :meth:`corefer`)."""
        o = len(self.objects)
        self.objects.append(SGObject(name=name, span=span, head=head, lemma=lemma))
        self.obj_tok.append(tok)
        return o

    # --------------------------------------------------------------- attributes
    def _add_attr(self, o: int, value: str, span: Tuple[int, int]) -> None:
        value = L.ATTRIBUTE_MAP.get(value.strip(), value.strip())
        if not value or (o, value) in self._attr_seen:
            return
        self._attr_seen.add((o, value))
        self.attrs.append(SGAttribute(object=o, value=value, span=span))

    def _modifier_value(self, k: int) -> Optional[str]:
        s = self.s
        if s.lower[k] in L.NON_ATTRIBUTES or s.lemma[k] in L.NON_ATTRIBUTES:
            return None
        if s.pos[k] in ("NUM", "DET", "PRON", "PUNCT", "ADP", "CCONJ", "PART"):
            return None
        if s.tag[k] in ("CD", "PRP$", "WDT", "WP", "POS"):
            return None
        return s.lower[k]

    def _positional_attributes(self) -> None:
        """Phrases that tell entities apart without naming an object: ``"the woman on the left"``
        → attribute ``"on the left"`` (FACTUAL's value); ``"the girl in white"`` → attribute
        ``"white"``. Attached to the noun the phrase modifies, or to the subjects of the verb it
        modifies (``"the woman sitting on the right"``)."""
        s = self.s
        for t in range(s.n):
            if s.dep[t] != "pobj" or t in self.tok2obj or s.head[t] == t:
                continue
            p = s.head[t]
            h = s.head[p]
            if h == p:
                continue
            if s.lower[t] in ("left", "right") and s.lower[p] in ("on", "to", "at") and \
                    not any(s.lower[k] == "of" for k in s.kids[t]):
                value, span = f"{s.lower[p]} the {s.lower[t]}", (p, t + 1)
            elif s.lower[t] in L.COLOURS and s.lower[p] in ("in", "dressed") and \
                    not any(s.dep[k] in ("prep", "compound") for k in s.kids[t]):
                value, span = s.lower[t], (t, t + 1)
            else:
                continue
            before = [k for k in s.kids[h] if k < p and s.dep[k] in _OBJ and k in self.tok2obj]
            if h in self.tok2obj:
                owners = [self.tok2obj[h]]
            elif s.is_verb(h) and before and value in L.COLOURS:
                # "a person in red chasing a person in green": the colour after the verb's object
                # describes that object (the parser often attaches the phrase to the verb)
                owners = [self.tok2obj[max(before)]]
            elif s.is_verb(h):
                owners = self.subjects(h)
            else:
                continue
            for o in owners:
                self._add_attr(o, value, span)

    def find_attributes(self) -> None:
        s = self.s
        self._positional_attributes()
        for i, o in list(self.tok2obj.items()):
            if i in self.quant_of:
                continue
            for k in s.kids[i]:
                d = s.dep[k]
                if d == "nummod" or (d in ("amod", "quantmod") and s.tag[k] == "CD"):
                    if self.objects[o].quantity is None:
                        self.objects[o].quantity = s.lower[k]
                    continue
                is_mod = d == "amod" or (d in ("nmod", "compound") and k not in self.name_tokens
                                         and not s.is_noun(k))
                if is_mod:
                    if self._has_complement(k):
                        continue
                    for m in s.conjuncts(k):
                        if m != k and s.pos[m] not in ("ADJ", "VERB", "NOUN", "PROPN"):
                            continue
                        if m in self.name_tokens:
                            continue
                        self._add_modifier(o, m)
                elif d in ("acl", "relcl") and s.is_verb(k):
                    if self._is_bare_participle(k):
                        v = self._modifier_value(k)
                        if v:
                            self._add_attr(o, v, (k, k + 1))
        # copula and intransitive predicates: "the shirt is red", "the boy is skating"
        for v in range(s.n):
            d = s.dep[v]
            if s.lemma[v] in _COPULA or s.lemma[v] in L.LINKING_VERBS:
                comps = [k for k in s.kids[v] if s.dep[k] in ("acomp", "oprd") or
                         (s.dep[k] == "attr" and s.pos[k] == "ADJ")]
                if not comps:
                    continue
                for subj in self.subjects(v):
                    for c in comps:
                        if self._has_complement(c):
                            continue
                        for m in s.conjuncts(c):
                            self._add_modifier(subj, m)
            elif s.is_verb(v) and d not in ("acl", "relcl", "amod", "aux", "auxpass") and \
                    s.tag[v] in ("VBG", "VBN") and self._is_bare_participle(v):
                for subj in self.subjects(v):
                    val = self._modifier_value(v)
                    if val:
                        self._add_attr(subj, val, (v, v + 1))
            elif s.is_verb(v) and d in ("ROOT", "conj", "advcl", "relcl", "ccomp") and \
                    s.tag[v] in ("VBZ", "VBP") and s.lemma[v] not in _SAYING and \
                    self._is_bare_participle(v, finite=True):
                # a finite verb without complements: "... and it sleeps" → attribute "sleep"
                for subj in self.subjects(v):
                    self._add_attr(subj, L.VERB_LEMMA.get(s.lemma[v], s.lemma[v]), (v, v + 1))

    def _add_modifier(self, o: int, m: int) -> None:
        """Attribute from modifier token ``m``; a shade before a colour makes one value."""
        s = self.s
        if s.lower[m] in L.SHADES and m + 1 < s.n and s.lower[m + 1] in L.COLOURS:
            self._add_attr(o, s.lower[m] + " " + s.lower[m + 1], (m, m + 2))
            self._merged.add(m + 1)
            return
        if m in self._merged:
            return
        if s.lower[m] in L.COLOURS and m > 0 and s.lower[m - 1] in L.SHADES:
            self._add_attr(o, s.lower[m - 1] + " " + s.lower[m], (m - 1, m + 1))
            self._merged.add(m)
            return
        v = self._modifier_value(m)
        if v:
            self._add_attr(o, v, (m, m + 1))

    def _has_complement(self, k: int) -> bool:
        """Whether a modifier has objects / prepositional complements (then it is a relation)."""
        s = self.s
        for c in s.kids[k]:
            if s.dep[c] in _OBJ or s.dep[c] in ("prep", "agent", "xcomp", "ccomp"):
                return True
        return False

    def _is_bare_participle(self, v: int, finite: bool = False) -> bool:
        """Whether verb ``v`` is a participle (or with ``finite``, any verb form) without objects
        or complements, which describes its subject as an attribute."""
        s = self.s
        if s.lemma[v] in _COPULA or s.lemma[v] in L.NON_ATTRIBUTE_VERBS or s.pos[v] == "AUX":
            return False
        if not finite and s.tag[v] not in ("VBG", "VBN"):
            return False
        for c in s.kids[v]:
            if s.dep[c] in _OBJ or s.dep[c] in ("prep", "agent", "xcomp", "ccomp", "acomp", "attr",
                                                 "advcl", "conj"):
                return False
        return True

    # ------------------------------------------------------------------ helpers
    def _obj_of(self, k: int) -> List[int]:
        """Object numbers a token stands for (conjuncts expanded, pronouns resolved)."""
        s = self.s
        out: List[int] = []
        for m in s.conjuncts(k):
            if m in self.tok2obj:
                out.append(self.tok2obj[m])
            elif s.lower[m] in _ANAPHORS:
                out.extend(self.pronoun_objects(m))
            elif s.lower[m] in _PERS_PRON or s.lower[m] in _REL_PRON:
                r = self._resolve_pronoun(m)
                if r is not None:
                    out.append(r)
        return out

    # ------------------------------------------------------------------ coreference
    def _kind(self, o: int) -> Tuple[bool, bool, bool, bool, bool]:
        """``(male, female, person, animal, plural)`` of object ``o``, from its name and tag."""
        ob = self.objects[o]
        names = {ob.head or "", ob.lemma or ""}
        male = bool(names & L.MALE_NOUNS)
        female = bool(names & L.FEMALE_NOUNS)
        person = male or female or bool(names & L.PERSON_NOUNS)
        animal = bool(names & L.ANIMAL_NOUNS)
        t = self.obj_tok[o]
        plural = self.s.tag[t] in ("NNS", "NNPS") or (ob.quantity is not None
                                                       and ob.quantity not in ("one", "1", "a", "an"))
        return male, female, person, animal, plural

    def _co_arguments(self, k: int) -> Set[int]:
        """Objects that pronoun ``k`` (not a subject, not a possessive) would be related to: a
        pronoun does not refer to the other argument of its own relation (``"a plate with a
        sandwich on it"``: ``it`` is the plate, not the sandwich)."""
        s = self.s
        d, h = s.dep[k], s.head[k]
        if h == k:
            return set()
        if d == "pobj":
            _, anchor = self._prep_chain(h)
            if anchor < 0:
                return set()
            if anchor in self.tok2obj:
                return set(self._noun_subjects(anchor))
            if s.is_verb(anchor) or s.pos[anchor] == "ADJ":
                return set(self.subjects(anchor))
            return set()
        if (d in _OBJ or d == "attr") and s.is_verb(h):
            return set(self.subjects(h))
        return set()

    def pronoun_objects(self, k: int) -> List[int]:
        """The objects personal pronoun ``k`` (``he``, ``him``, ``his``, ``she``, ``her``, ``it``,
        ``its``, ``they``, ``them``, ``their`` ...) refers to: the nearest previous compatible
        mention (see the module docstring), else the clause rule of :meth:`_resolve_pronoun`."""
        if k in self._antecedents:
            return self._antecedents[k]
        if k in self._resolving:   # a pronoun whose resolution needs itself
            return []
        self._resolving.add(k)
        try:
            out = self._find_antecedents(k)
        finally:
            self._resolving.discard(k)
        self._antecedents[k] = out
        return out

    def _find_antecedents(self, k: int) -> List[int]:
        s = self.s
        low = s.lower[k]
        possessive = s.dep[k] == "poss" or low in ("his", "its", "their", "hers", "theirs")
        excluded = set() if possessive or s.dep[k] in _SUBJ else self._co_arguments(k)
        if possessive and s.head[k] in self.tok2obj:   # "their arms": not the arms
            excluded.add(self.tok2obj[s.head[k]])
        before = sorted((o for o in range(len(self.objects)) if self.obj_tok[o] < k and o not in excluded),
                        key=lambda o: -self.obj_tok[o])
        kinds = {o: self._kind(o) for o in before}
        if low in _HE:
            tiers = [lambda m, f, p, a, pl: m and not pl, lambda m, f, p, a, pl: p and not f and not pl,
                     lambda m, f, p, a, pl: a and not pl]
        elif low in _SHE:
            tiers = [lambda m, f, p, a, pl: f and not pl, lambda m, f, p, a, pl: p and not m and not pl,
                     lambda m, f, p, a, pl: a and not pl]
        elif low in _IT:
            tiers = [lambda m, f, p, a, pl: not p and not pl]
        else:   # they / them / their
            tiers = [lambda m, f, p, a, pl: pl and p, lambda m, f, p, a, pl: pl and a, lambda m, f, p, a, pl: pl]
        clause = self._resolve_pronoun(k) if low not in ("him", "them") else None
        for tier in tiers:
            hits = [o for o in before if tier(*kinds[o])]
            if hits:
                # the subject of the pronoun's clause when it fits as well as the nearest one
                if clause is not None and clause in hits:
                    return [clause]
                return hits[:1]
        if low in _THEY:
            # "a man and a woman ... their": the nearest coordinated series
            for t in sorted((t for t in self.tok2obj if t < k), reverse=True):
                members = [self.tok2obj[m] for m in s.series(t) if m in self.tok2obj]
                if len(set(members)) > 1 and not set(members) & excluded:
                    return sorted(set(members), key=members.index)
            # singular "they": "the person has their arms up"
            hits = [o for o in before if kinds[o][2]]
            if hits:
                return [clause] if clause in hits else hits[:1]
        after = sorted((o for o in range(len(self.objects)) if self.obj_tok[o] > k and o not in excluded),
                       key=lambda o: self.obj_tok[o])
        for tier in tiers:   # "a woman holding his umbrella next to a man": the nearest one after
            hits = [o for o in after if tier(*self._kind(o))]
            if hits:
                return hits[:1]
        if clause is None or clause in excluded:
            return []
        male, female, person, _, _ = self._kind(clause)
        if (low in _HE and female) or (low in _SHE and male) or (low in _IT and person):
            return []
        return [clause]

    def _signature(self, o: int) -> Set[Tuple[str, ...]]:
        """The modifiers of mention ``o`` that could tell it apart from another entity of its name:
        adjectives / numbers / compounds outside the name, prepositional phrases (preposition and
        complement lemma), clauses (verb lemma) and noun possessors."""
        s = self.s
        t = self.obj_tok[o]
        lo, hi = self.objects[o].span
        out: Set[Tuple[str, ...]] = set()
        for k in s.kids[t]:
            d = s.dep[k]
            if d in ("amod", "nmod", "nummod", "quantmod", "compound", "npadvmod") and not lo <= k < hi:
                if s.lower[k] not in ("same",) and s.pos[k] not in ("DET", "PRON"):
                    out.add(("mod", s.lower[k]))
            elif d == "prep":
                comp = s.kids_with(k, {"pobj", "pcomp"})
                out.add(("prep", s.lower[k], s.lemma[comp[0]] if comp else ""))
            elif d in ("acl", "relcl", "appos"):
                out.add(("clause", s.lemma[k]))
            elif d == "poss" and s.lower[k] not in _POSS_PRON:
                out.add(("poss", s.lemma[k]))
        return out

    def _may_refer_back(self, o: int) -> bool:
        """Whether mention ``o`` can be an earlier entity again: not indefinite (``a`` / ``an`` /
        ``some`` / a number ...), not marked as new (``another``, ``other``, ``second``; lexicon
        ``NEW_ENTITY_WORDS``), not an indefinite pronoun (``someone``)."""
        s = self.s
        t = self.obj_tok[o]
        if s.lower[t] in L.PRONOUN_OBJECTS:
            return False
        toks = [t] + [q for q, c in self.quant_of.items() if c == t]
        for x in toks:
            for k in s.kids[x]:
                if s.dep[k] in ("det", "predet") and s.lower[k] in _INDEFINITE:
                    return False
                if s.lower[k] in L.NEW_ENTITY_WORDS and s.dep[k] in ("det", "predet", "amod", "nummod", "advmod"):
                    return False
        return True

    def corefer(self) -> None:
        """Join a definite or bare repeat of an earlier name into that entity (see the module
        docstring): each mention that :meth:`_may_refer_back` is joined to the most recent earlier
        entity of the same name and number whose modifiers (:meth:`_signature`, and its
        attribute values) include all of the mention's, unless the two are related to each other."""
        n = len(self.objects)
        if n < 2:
            return
        parent = list(range(n))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        pairs = {(r.subject, r.object) for r in self.rels} | {(r.object, r.subject) for r in self.rels}
        values: List[Set[Tuple[str, ...]]] = [set() for _ in range(n)]
        for a in self.attrs:
            values[a.object].add(("mod", a.value))
        order = sorted(range(n), key=lambda o: self.obj_tok[o])
        sig = {o: self._signature(o) for o in order}
        plural = {o: self._kind(o)[4] for o in order}
        joined = False
        for idx, m in enumerate(order):
            if not self._may_refer_back(m):
                continue
            for a in reversed(order[:idx]):
                if self.objects[a].lemma != self.objects[m].lemma or plural[a] != plural[m]:
                    continue
                ra = find(a)
                members = [x for x in range(n) if find(x) == ra]
                known = set().union(*(sig[x] | values[x] for x in members))
                if not sig[m] <= known:
                    continue
                if any((x, m) in pairs for x in members):
                    continue
                parent[find(m)] = ra
                joined = True
                break
        if joined:
            self._collapse([find(o) for o in range(n)])

    def _collapse(self, root: List[int]) -> None:
        """Replace each object by its entity ``root[o]`` (an object number), renumbering objects in
        order of first mention and remapping attributes and relations (duplicates and relations of
        an entity to itself dropped)."""
        new_of: Dict[int, int] = {}
        objects: List[SGObject] = []
        obj_tok: List[int] = []
        for o in range(len(self.objects)):
            r = root[o]
            if r not in new_of:
                new_of[r] = len(objects)
                ob = self.objects[r]
                objects.append(SGObject(name=ob.name, span=ob.span, head=ob.head, lemma=ob.lemma,
                                        quantity=ob.quantity))
                obj_tok.append(self.obj_tok[r])
        for o in range(len(self.objects)):
            e = objects[new_of[root[o]]]
            if e.quantity is None and self.objects[o].quantity is not None:
                e.quantity = self.objects[o].quantity
        remap = [new_of[root[o]] for o in range(len(self.objects))]
        attrs, seen_a = [], set()
        for a in self.attrs:
            key = (remap[a.object], a.value)
            if key not in seen_a:
                seen_a.add(key)
                attrs.append(SGAttribute(object=key[0], value=a.value, span=a.span))
        rels, seen_r = [], set()
        for r in self.rels:
            key3 = (remap[r.subject], r.predicate, remap[r.object])
            if key3[0] != key3[2] and key3 not in seen_r:
                seen_r.add(key3)
                rels.append(SGRelation(subject=key3[0], predicate=r.predicate, object=key3[2], span=r.span))
        self.objects, self.obj_tok, self.attrs, self.rels = objects, obj_tok, attrs, rels
        self.tok2obj = {t: remap[o] for t, o in self.tok2obj.items()}

    def _clause_verb(self, k: int) -> Optional[int]:
        s = self.s
        seen = 0
        while seen < 50:
            seen += 1
            if s.is_verb(k) and s.dep[k] not in ("aux", "auxpass"):
                return k
            if s.head[k] == k:
                return None
            k = s.head[k]
        return None

    def _resolve_pronoun(self, k: int) -> Optional[int]:
        s = self.s
        low = s.lower[k]
        if low in _REL_PRON:
            # relative pronoun: the noun the relative clause modifies
            v = self._clause_verb(k)
            while v is not None and s.dep[v] not in ("relcl", "acl") and s.dep[v] == "conj":
                v = s.head[v]
            if v is not None and s.dep[v] in ("relcl", "acl"):
                h = s.head[v]
                objs = self._obj_of(h) if h in self.tok2obj else []
                return objs[0] if objs else None
            return None
        if low in ("it", "this", "these", "those", "itself") and s.dep[k] not in _SUBJ:
            return None
        if s.dep[k] in _SUBJ or low in _POSS_PRON:
            v = self._clause_verb(k)
            # the subject of the governing clause (not through the pronoun itself)
            if v is not None:
                for c in s.kids[v]:
                    if s.dep[c] in _SUBJ and c != k and c in self.tok2obj:
                        return self.tok2obj[c]
                if s.dep[v] in ("acl", "relcl") and s.head[v] in self.tok2obj:
                    return self.tok2obj[s.head[v]]
                u = v
                steps = 0
                while s.dep[u] in ("conj", "advcl", "xcomp", "ccomp") and s.head[u] != u and steps < 20:
                    steps += 1
                    u = s.head[u]
                    if u in self.tok2obj:
                        return self.tok2obj[u]
                    for c in s.kids[u]:
                        if s.dep[c] in _SUBJ and c in self.tok2obj:
                            return self.tok2obj[c]
                    if s.dep[u] in ("acl", "relcl") and s.head[u] in self.tok2obj:
                        return self.tok2obj[s.head[u]]
            # else: the first object of the caption that precedes the pronoun
            first = [t for t in sorted(self.tok2obj) if t < k]
            if first:
                return self.tok2obj[first[0]]
        return None

    def subjects(self, v: int, _depth: int = 0) -> List[int]:
        """Object numbers of the subject(s) of verb / adjective ``v``."""
        s = self.s
        if _depth > 20:
            return []
        subj = [c for c in s.kids[v] if s.dep[c] in ("nsubj", "nsubjpass")]
        expl = any(s.dep[c] == "expl" for c in s.kids[v])
        if expl:
            attr = [c for c in s.kids[v] if s.dep[c] in ("attr", "dobj", "nsubj")]
            out = [o for c in attr for o in self._obj_of(c)]
            if out:
                return out
        out = [o for c in subj for o in self._obj_of(c)]
        if out or subj:
            return out
        d, h = s.dep[v], s.head[v]
        if h == v:
            return []
        if d in ("acl", "relcl", "amod", "appos") and (h in self.tok2obj):
            return self._obj_of(h) if s.dep[v] != "relcl" else [self.tok2obj[h]]
        if d in ("conj", "advcl", "xcomp", "ccomp", "pcomp", "dep") and (s.is_verb(h) or s.pos[h] == "ADJ"):
            return self.subjects(h, _depth + 1)
        if d in ("conj",) and h in self.tok2obj:
            # "a man standing and a woman sitting" → handled by acl; "man ... and holding"
            return [self.tok2obj[h]]
        return []

    def _add_rel(self, subj: int, pred: str, obj: int, span: Tuple[int, int]) -> None:
        pred = " ".join(pred.split())
        if not pred or subj == obj:
            return
        mapped = L.PREDICATE_MAP.get(pred)
        if mapped is not None:
            pred, rev = mapped
            if rev:
                subj, obj = obj, subj
        if pred in L.WEAR_PREPOSITIONS and (self.objects[obj].head in L.CLOTHING
                                            or self.objects[obj].lemma in L.CLOTHING):
            pred = "wear"
        if not pred or pred in _COPULA:
            return
        key = (subj, pred, obj)
        if key in self._rel_seen:
            return
        self._rel_seen.add(key)
        self.rels.append(SGRelation(subject=subj, predicate=pred, object=obj, span=span))

    def _verb_pred(self, v: int, skip: Tuple[int, ...] = ()) -> str:
        """The verb's lemma and its particles ("pick up"), leaving out the tokens in ``skip``
        (particles that are already part of a following preposition chain)."""
        s = self.s
        words = [L.VERB_LEMMA.get(s.lemma[v], s.lemma[v])]
        for c in s.kids[v]:
            if s.dep[c] == "prt" and c > v and c not in skip:
                words.append(s.lower[c])
        return " ".join(words)

    # --------------------------------------------------------------- relations
    def _prep_chain(self, p: int) -> Tuple[List[int], int]:
        """Walk up from preposition ``p`` through folded words; returns (predicate tokens, anchor)."""
        s = self.s
        parts = [p]
        x = s.head[p]
        steps = 0
        while x != p and steps < 10:
            steps += 1
            if x in self.relational and s.dep[x] == "pobj" and s.head[x] != x:
                q = s.head[x]
                mods = [m for m in s.kids[x] if m < x and s.dep[m] in ("amod", "compound", "advmod")
                        and (s.lower[m] in L.RELATIONAL_MODIFIERS)]
                if mods:   # "on the right side of": FACTUAL keeps the article here
                    mods = [m for m in s.kids[x] if m < mods[0] and s.dep[m] == "det"
                            and s.lower[m] == "the"] + mods
                parts = [q] + mods + [x] + parts
                if s.head[q] == q:
                    return parts, -1
                x = s.head[q]
                continue
            if x in self.relational and s.dep[x] in ("ROOT", "npadvmod"):
                mods = [m for m in s.kids[x] if m < x and s.lower[m] in L.RELATIONAL_MODIFIERS]
                parts = mods + [x] + parts
                return parts, -1
            if s.pos[x] in ("ADV", "ADJ", "ADP", "PART") and x < parts[0] and \
                    s.lower[x] in L.PREP_ADVERBS and s.dep[x] in ("advmod", "prep", "prt", "amod", "acomp",
                                                               "ROOT", "npadvmod", "pcomp"):
                # a repeated preposition ("on the ground, on the grass") is read once
                if s.lower[x] != s.lower[parts[0]]:
                    parts = [x] + parts
                if s.head[x] == x:
                    return parts, -1
                x = s.head[x]
                continue
            break
        return parts, x

    def find_relations(self) -> None:
        s = self.s
        for i in range(s.n):
            d = s.dep[i]
            if d == "pobj":
                p = s.head[i]
                if p == i or s.dep[p] not in _PREP_DEPS and s.pos[p] != "ADP":
                    continue
                if i in self.relational:
                    continue
                if self._with_it(i):
                    continue
                objs = self._obj_of(i)
                if not objs:
                    continue
                self._rel_from_prep(p, objs)
            elif d in _OBJ or (d == "attr" and s.lemma[s.head[i]] not in _COPULA):
                v = s.head[i]
                if v == i or not s.is_verb(v):
                    continue
                objs = self._obj_of(i)
                if not objs:
                    continue
                pred = self._verb_pred(v)
                for sj in self.subjects(v):
                    for o in objs:
                        self._add_rel(sj, pred, o, (min(v, i), max(v, i) + 1))
            elif d == "poss":
                owner = self._obj_of(i) if s.lower[i] not in _POSS_PRON else self.pronoun_objects(i)
                h = s.head[i]
                if h in self.quant_of:
                    h = self.quant_of[h]
                if h not in self.tok2obj:
                    continue
                for own in owner:
                    for o in self._obj_of(h)[:1] or [self.tok2obj[h]]:
                        self._add_rel(own, "have", o, (i, h + 1))
        # relative clauses whose head noun is the object: "the grass that the bag is on"
        for v in range(s.n):
            if s.dep[v] != "relcl" or s.head[v] not in self.tok2obj:
                continue
            subj = [c for c in s.kids[v] if s.dep[c] in _SUBJ and s.lower[c] not in _REL_PRON]
            if not subj:
                continue
            if any(s.dep[c] in _OBJ for c in s.kids[v]):
                continue
            head_obj = self.tok2obj[s.head[v]]
            stranded = [c for c in s.kids[v] if s.dep[c] == "prep" and not s.kids_with(c, {"pobj", "pcomp"})]
            if stranded:
                pred = " ".join(s.lower[c] for c in stranded[:1])
                if s.lemma[v] not in _COPULA:
                    pred = self._verb_pred(v) + " " + pred
            elif s.lemma[v] not in _COPULA:
                pred = self._verb_pred(v)
            else:
                continue
            for sj in self.subjects(v):
                self._add_rel(sj, pred, head_obj, (min(v, s.head[v]), max(v, s.head[v]) + 1))

    def _with_it(self, i: int) -> bool:
        """``"a cart with luggage on it"`` when the parser attaches ``on it`` to ``cart``: the
        pronoun is the cart and the relation is ``(luggage, on, cart)``. Returns whether the
        pronoun ``pobj`` ``i`` was read this way (its relations added)."""
        s = self.s
        if s.lower[i] not in _IT and s.lower[i] not in _THEY:
            return False
        p = s.head[i]
        x = s.head[p]
        if x == p or x not in self.tok2obj or s.dep[p] != "prep":
            return False
        withs = [c for k in s.kids[x] if s.lower[k] == "with" and s.dep[k] == "prep" and k < p
                 for c in s.kids_with(k, {"pobj"}) if c in self.tok2obj]
        if not withs:
            return False
        parts, _ = self._prep_chain(p)
        pred = " ".join(s.lower[k] for k in parts)
        for y in withs:
            for sub in self._obj_of(y):
                self._add_rel(sub, pred, self.tok2obj[x], (p, i + 1))
        return True

    def _rel_from_prep(self, p: int, objs: List[int]) -> None:
        s = self.s
        parts, anchor = self._prep_chain(p)
        if anchor < 0:
            return
        prep_words = " ".join(s.lower[k] for k in parts)
        span = (min(parts + [anchor]), max(parts) + 1)
        # passive agent: "covered by water" → (water, cover, X)
        if s.dep[p] == "agent" and len(parts) == 1 and s.is_verb(anchor):
            patients = [c for c in s.kids[anchor] if s.dep[c] == "nsubjpass"]
            pats = [o for c in patients for o in self._obj_of(c)]
            if not pats and s.dep[anchor] in ("acl", "relcl", "amod") and s.head[anchor] in self.tok2obj:
                pats = [self.tok2obj[s.head[anchor]]]
            pred = self._verb_pred(anchor)
            for sj in objs:
                for pt in pats:
                    self._add_rel(sj, pred, pt, span)
            return
        if anchor in self.tok2obj or s.is_noun(anchor):
            if anchor in self.tok2obj:
                subs = self._noun_subjects(anchor)
            elif (prep_words == "of" and s.lemma[anchor] in _DEPICTIONS and s.dep[anchor] in _OBJ
                  and s.is_verb(s.head[anchor]) and s.head[anchor] != anchor):
                # "a woman taking a picture of a man" → (woman, take picture of, man)
                v = s.head[anchor]
                pred = self._verb_pred(v) + " " + s.lemma[anchor] + " of"
                for sub in self.subjects(v):
                    for o in objs:
                        self._add_rel(sub, pred, o, (min(v, p), max(parts) + 1))
                return
            else:
                return
            if prep_words == "of":
                for sub in subs:
                    head_lemma = self.objects[sub].head or ""
                    rule = L.OF_RELATIONS.get(head_lemma)
                    for o in objs:
                        if rule is None:
                            self._add_rel(o, "have", sub, span)
                        elif rule[0] == "forward":
                            self._add_rel(sub, rule[1], o, span)
                        else:
                            self._add_rel(o, rule[1], sub, span)
                return
            for sub in subs:
                for o in objs:
                    self._add_rel(sub, prep_words, o, span)
            return
        if s.is_verb(anchor):
            subs = self.subjects(anchor)
            if s.lemma[anchor] in _COPULA:
                pred = prep_words
            else:  # a particle folded into the chain ("walking up the stairs") is not repeated
                pred = self._verb_pred(anchor, tuple(parts)) + " " + prep_words
            for sub in subs:
                for o in objs:
                    self._add_rel(sub, pred, o, span)
            return
        if s.pos[anchor] == "ADJ":
            # "attached to", "full of" (participles tagged as adjectives)
            if s.dep[anchor] in ("amod",) and s.head[anchor] in self.tok2obj:
                subs = self._noun_subjects(s.head[anchor])
            else:
                subs = self.subjects(anchor)
                if not subs and s.dep[anchor] in ("acomp",) and s.head[anchor] != anchor:
                    subs = self.subjects(s.head[anchor])
            pred = L.VERB_LEMMA.get(s.lower[anchor], s.lower[anchor]) + " " + prep_words
            for sub in subs:
                for o in objs:
                    self._add_rel(sub, pred, o, span)

    def _noun_subjects(self, n: int) -> List[int]:
        """A noun-attached modifier on the last noun of a series applies to all of them."""
        s = self.s
        series = s.series(n)
        if len(series) > 1 and n == series[-1]:
            return [self.tok2obj[k] for k in series if k in self.tok2obj]
        return [self.tok2obj[n]]

    def build(self) -> SceneGraph:
        self.find_objects()
        self.find_attributes()
        self.find_relations()
        for sj, pred, ob, span in self._pending:
            self._add_rel(sj, pred, ob, span)
        self.corefer()
        s = self.s
        heads = list(s.head)
        return SceneGraph(tokens=list(s.text), objects=self.objects, attributes=self.attrs,
                          relations=self.rels, lemmas=list(s.lemma), heads=heads, deps=list(s.dep),
                          text=s.doc_text, offsets=list(s.offsets))


def doc_to_scene_graph(doc: Any) -> SceneGraph:
    """The scene graph of a spaCy ``Doc`` or ``Span`` (see the module docstring for the rules)."""
    s = _Sent(doc)
    if s.n == 0:
        return SceneGraph(tokens=[], note="empty caption", text=s.doc_text, offsets=[])
    g = _Builder(s).build()
    if not g.objects:
        g.note = "no objects found"
    return g
