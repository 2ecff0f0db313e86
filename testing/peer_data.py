"""The peer benchmark's data: real public text, not written for the project. GCIDE (GNU Collaborative
International Dictionary of English, Debian's `dict-gcide`) entries become (gloss -> headword) pairs, the
query a definition and its positive the word it defines; other headwords of the same dictionary are the
separate candidate corpus. Entries are read through the dictd index (base64 offsets into the gzip text) and
ordered by a hash of the headword, so any prefix of the order is a spread over the whole alphabet."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator

DICT = "/usr/share/dictd/gcide.dict.dz"
INDEX = "/usr/share/dictd/gcide.index"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(s: str) -> int:
    n = 0
    for ch in s:
        n = n * 64 + B64.index(ch)
    return n


def _gloss(entry: str) -> str:
    """The first definition of an entry: the header line(s) and etymology skipped, sense numbers and
    subject labels dropped, cut at the first source mark or blank line."""
    lines = entry.split("\n")[1:]
    text: list[str] = []
    for line in lines:
        s = line.strip()
        if not s:
            if text:
                break
            continue
        if s.startswith("[") and s.endswith("]") and text:
            break
        text.append(s)
    gloss = " ".join(text)
    gloss = re.sub(r"^\[[^\]]*\]\s*", "", gloss)  # an etymology after the header
    close = gloss.find("]")
    if close >= 0 and "[" not in gloss[:close]:  # the tail of an etymology begun in the header
        gloss = gloss[close + 1:].strip()
    gloss = re.sub(r"[{}]", "", gloss)  # GCIDE's markup of cross-references
    gloss = re.sub(r"^(\d+\.\s*)?(\([^)]*\)\s*)*", "", gloss)
    gloss = re.split(r"\[1913 Webster\]|\[PJC\]|\[WordNet", gloss)[0]
    gloss = re.split(r"(?<=[a-z])\.\s", gloss + " ")[0].strip().rstrip(".")
    return gloss


def dictd_entries(dict_path: str, index_path: str, gloss_of: Callable[[str], str]) -> Iterator[tuple[str, str]]:
    """(headword, gloss) of every entry of a dictd dictionary (gzip text + an index of base64 offsets) with a plain
    headword and a gloss of at least four words; `gloss_of` takes the gloss out of the entry's text."""
    with gzip.open(dict_path, "rb") as f:
        data = f.read()
    with open(index_path, encoding="utf-8") as f:
        for line in f:
            word, offset, length = line.rstrip("\n").split("\t")
            if word.startswith("00") or not re.fullmatch(r"[A-Za-z][A-Za-z' -]{1,40}", word):
                continue
            start = _b64(offset)
            gloss = gloss_of(data[start:start + _b64(length)].decode("utf-8", "replace"))
            if len(gloss.split()) >= 4 and "\\" not in gloss and len(gloss) <= 200:
                yield word, gloss


def entries() -> Iterator[tuple[str, str]]:
    """(headword, gloss) of GCIDE's entries."""
    return dictd_entries(DICT, INDEX, _gloss)


def write(directory: str, pairs: int = 20_000, corpus: int = 11_000) -> tuple[str, str]:
    """pairs.jsonl (query_text = gloss, pos_text = headword) and corpus.jsonl (other headwords)."""
    seen: dict[str, tuple[str, str]] = {}
    for word, gloss in entries():
        seen.setdefault(word.lower(), (word, gloss))
    order = sorted(seen.values(), key=lambda e: hashlib.sha256(e[0].encode()).hexdigest())
    if len(order) < pairs + corpus:
        raise SystemExit(f"{DICT}: only {len(order)} usable entries, {pairs + corpus} needed")
    os.makedirs(directory, exist_ok=True)
    pairs_path, corpus_path = os.path.join(directory, "pairs.jsonl"), os.path.join(directory, "corpus.jsonl")
    with open(pairs_path, "w", encoding="utf-8") as f:
        for i, (word, gloss) in enumerate(order[:pairs]):
            f.write(json.dumps({"query_id": f"g{i}", "query_text": gloss, "pos_text": word}) + "\n")
    with open(corpus_path, "w", encoding="utf-8") as f:
        for i, (word, _) in enumerate(order[pairs:pairs + corpus]):
            f.write(json.dumps({"id": f"w{i}", "text": word}) + "\n")
    return pairs_path, corpus_path


if __name__ == "__main__":
    import sys
    print(write(sys.argv[1] if len(sys.argv) > 1 else "out/bench-peer/data"))
