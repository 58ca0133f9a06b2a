"""Documents built from the NLTK corpora in ../shared/data/text (clean vs informal English) for
the classifier tests."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
import zipfile

import pytest

def _chunks(pieces: list[str], size: int) -> list[str]:
    """Consecutive pieces (paragraphs, lines, posts) joined by line breaks into documents of at
    least `size` characters, so both classes have documents of similar length."""
    documents, current = [], []
    for piece in pieces:
        current.append(piece)
        if sum(map(len, current)) >= size:
            documents.append("\n".join(current))
            current = []
    return documents


def _brown_text(tagged: str) -> list[str]:
    """Brown's `word/tag` paragraphs as plain text (its `` and '' quotes as the " web text uses)."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", tagged):
        words = [token.rsplit("/", 1)[0] for token in block.split()]
        text = " ".join(words).replace("``", '"').replace("''", '"')
        if text:
            paragraphs.append(text)
    return paragraphs


@pytest.fixture(scope="session")
def nltk_documents(shared_data) -> dict[str, list[str]]:
    """{"clean": [...], "informal": [...]}: brown, inaugural and state_union against webtext and
    nps_chat, cut into documents of about 600 characters."""
    root, size = shared_data / "text", 600
    clean, informal = [], []
    with zipfile.ZipFile(root / "brown.zip") as archive:
        for name in sorted(n for n in archive.namelist() if re.fullmatch(r"brown/c[a-r]\d\d", n)):
            clean += _chunks(_brown_text(archive.read(name).decode("utf-8")), size)
    for corpus in ("inaugural", "state_union"):
        with zipfile.ZipFile(root / f"{corpus}.zip") as archive:
            for name in sorted(n for n in archive.namelist() if n.endswith(".txt")):
                text = archive.read(name).decode("latin-1")
                clean += _chunks([p.strip() for p in text.split("\n") if p.strip()], size)
    with zipfile.ZipFile(root / "webtext.zip") as archive:
        for name in sorted(n for n in archive.namelist() if n.endswith(".txt")):
            lines = archive.read(name).decode("latin-1").split("\n")
            informal += _chunks([line.strip() for line in lines if line.strip()], size)
    with zipfile.ZipFile(root / "nps_chat.zip") as archive:
        for name in sorted(n for n in archive.namelist() if n.endswith(".xml")):
            posts = ElementTree.fromstring(archive.read(name)).iter("Post")
            informal += _chunks([p.text.strip() for p in posts if p.get("class") != "System" and p.text
                                 and p.text.strip()], size)
    return {"clean": clean, "informal": informal}
