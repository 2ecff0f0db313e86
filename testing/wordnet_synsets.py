"""make bench-quality's data: WordNet 3.0 synsets (Debian's `dict-wn`) as gloss -> lemma pairs with known false
negatives. A noun synset with 2-4 lemmas gives one query (its gloss), one positive (its first lemma) and known
false negatives (its other lemmas, which are in the pool as candidates of their own); single-lemma synsets add
distractor lemmas to the pool. Synsets are split, by a hash of their lemmas, into a mining/training part and a
held-out part, so no held-out gloss or synset is seen in training."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from judgemine.testing.peer_data import dictd_entries
from judgemine.testing.scale_data import WN_DICT, WN_INDEX

SENSE = re.compile(r"(?:^|\s)(?:n\s+)?\d+:\s+|(?:^|\s)n\s+")


@dataclass(frozen=True)
class Synset:
    gloss: str
    lemmas: tuple[str, ...]  # the positive first

    @property
    def key(self) -> str:
        return hashlib.sha256("\x00".join(sorted(self.lemmas)).encode()).hexdigest()


def _senses(entry: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(gloss, synonym lemmas) of each noun sense of one dictd entry."""
    head, *lines = entry.split("\n")
    body = " ".join(line.strip() for line in lines)
    noun = re.match(r"n\s+(.*?)(?:\s+(?:v|adj|adv)\s+1?:?\s|$)", body)
    if not noun:
        return
    for sense in re.split(r"(?:^|\s)\d+:\s+", noun.group(1)):
        syn = re.search(r"\[syn:\s*(.*?)\]", sense)
        lemmas = tuple(dict.fromkeys(re.findall(r"\{([^}]+)\}", syn.group(1)))) if syn else (head.strip(),)
        gloss = re.split(r"\s*\[(?:syn|ant|also)|;\s*\"", sense)[0]
        gloss = re.sub(r"[{}]", "", gloss).strip().rstrip(".;").strip()
        if gloss:
            yield gloss, lemmas


def synsets() -> list[Synset]:
    """Every distinct noun synset (each appears under each of its lemmas' entries), in hash order."""
    seen: dict[tuple[str, tuple[str, ...]], Synset] = {}
    for word, entry in dictd_entries(WN_DICT, WN_INDEX, lambda e: e):
        for gloss, lemmas in _senses(entry):
            if word in lemmas:  # the positive: the entry's own headword first when several synsets share a gloss
                lemmas = (word, *[lemma for lemma in lemmas if lemma != word])
            key = (gloss, tuple(sorted(lemmas)))
            if key not in seen:
                seen[key] = Synset(gloss, lemmas)
    return sorted(seen.values(), key=lambda s: s.key)


def split(found: list[Synset], train: int, held_out: int, distractors: int
          ) -> tuple[list[Synset], list[Synset], list[str]]:
    """(training synsets, held-out synsets, the lemma pool): the first synsets with 2-4 lemmas (and glosses of at
    least four words) in hash order, then distractor lemmas of single-lemma synsets."""
    usable = [s for s in found if 2 <= len(s.lemmas) <= 4 and len(s.gloss.split()) >= 4]
    chosen = usable[:train + held_out]
    pool = list(dict.fromkeys(lemma for s in chosen for lemma in s.lemmas))
    taken, limit = set(pool), len(pool) + distractors
    for s in found:
        if len(pool) >= limit:
            break
        if len(s.lemmas) == 1 and s.lemmas[0] not in taken:
            pool.append(s.lemmas[0])
            taken.add(s.lemmas[0])
    return chosen[:train], chosen[train:], pool
