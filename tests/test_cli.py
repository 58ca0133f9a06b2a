"""The `pipeline` command as a user types it: status, inspect, validate, generate, and its error exits."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from crawl2model.cli import app
from crawl2model.catalog import load_config
from crawl2model.pipeline.runner import run

cli = CliRunner()


@pytest.fixture(scope="module")
def finished_run(local_ray, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    docs = tmp / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t, "topic": "demo"}) + "\n"
                            for t in ["a short one", "a rather longer document about rivers and boats",
                                      "another long one, about mills and roads"]))
    config = tmp / "crawl.yaml"
    config.write_text(yaml.safe_dump({"name": "cli", "output_dir": str(tmp / "out"), "input": {"jsonl": [str(docs)]},
                                      "stages": [{"name": "short", "type": "example_stages:Short", "min_chars": 20}]}))
    run(*load_config(config), show_progress=False)
    return config, tmp / "out"


def table_rows(output: str) -> dict[str, dict[str, str]]:
    """The rows of a rich table as printed, by their first cell: {column name: cell text}."""
    def cells(line: str, bar: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip(bar).split(bar)]

    [header] = [cells(line, "┃") for line in output.splitlines() if line.startswith("┃")]
    body = [cells(line, "│") for line in output.splitlines() if line.startswith("│")]
    assert all(len(row) == len(header) for row in body), (header, body)  # one printed line per row
    return {row[0]: dict(zip(header, row)) for row in body}


@pytest.mark.ray
def test_status_lists_stages_with_counts(finished_run):
    _, out = finished_run
    result = cli.invoke(app, ["status", str(out)])
    assert result.exit_code == 0
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "done" in lines["short"] and " 2 " in lines["short"] and " 1 " in lines["short"]
    rows = table_rows(result.output)
    assert list(rows) == ["read", "short"]
    # 3 documents read; "a short one" (11 characters) removed by min_chars 20, the other two kept
    assert {k: rows["short"][k] for k in ("status", "docs in", "kept", "removed", "shards")} == {
        "status": "done", "docs in": "3", "kept": "2", "removed": "1", "shards": "1"}
    assert {k: rows["read"][k] for k in ("status", "docs in", "kept", "removed")} == {
        "status": "done", "docs in": "3", "kept": "3", "removed": "0"}
    assert float(rows["short"]["seconds"]) >= 0


@pytest.mark.ray
def test_inspect_shows_documents_and_reasons(finished_run):
    _, out = finished_run
    kept = cli.invoke(app, ["inspect", str(out), "short", "-n", "5"])
    assert kept.exit_code == 0 and "rivers and boats" in kept.output and "topic=demo" in kept.output
    removed = cli.invoke(app, ["inspect", str(out), "short", "--removed"])
    assert removed.exit_code == 0
    assert "removed: short:chars<20" in removed.output and "a short one" in removed.output


@pytest.mark.ray
def test_validate_and_a_rerun_that_is_all_cached(finished_run):
    config, _ = finished_run
    assert "ok; stages: read, short" in cli.invoke(app, ["validate", str(config)]).output
    rerun = cli.invoke(app, ["run", str(config), "--no-progress"])
    assert rerun.exit_code == 0 and rerun.output.count("done (cached)") == 2
    assert f"report: {config.parent / 'out' / 'report.html'}" in rerun.output.replace("\n", "")  # written each run


@pytest.mark.ray
def test_errors_exit_with_code_2_and_say_why(finished_run, tmp_path):
    config, out = finished_run
    forced = cli.invoke(app, ["run", str(config), "--force", "shrot"])
    assert forced.exit_code == 2 and "no stage named 'shrot'" in forced.output
    assert cli.invoke(app, ["status", str(tmp_path)]).exit_code == 2
    unknown = cli.invoke(app, ["inspect", str(out), "nope"])
    assert unknown.exit_code == 2 and "stage 'nope' has no stats" in unknown.output


def test_classifiers_train_then_eval(labelled_texts, tmp_path):
    rows = labelled_texts(400)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"body": r["text"], "kind": r["label"]}) + "\n" for r in rows))
    held_out = tmp_path / "held_out.ft"  # fastText's own format: __label__name text
    held_out.write_text("".join(f"__label__{r['label']} {r['text']}\n" for r in labelled_texts(100, seed=9)))
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"output": str(tmp_path / "m" / "model.bin"), "positive": "hq", "epochs": 20,
                                      "buckets": 20000, "dim": 16,
                                      "sources": [{"files": [str(data)], "text_column": "body", "label_column": "kind"}]}))
    trained = cli.invoke(app, ["classifiers", "train", str(config)])
    assert trained.exit_code == 0, trained.output
    assert "ROC AUC" in trained.output and (tmp_path / "m" / "model.json").exists()
    evaluated = cli.invoke(app, ["classifiers", "eval", str(tmp_path / "m" / "model.bin"), str(held_out), "--unit", "line"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "scoring label 'hq' on 100 examples" in evaluated.output
    auc = float(evaluated.output.split("ROC AUC: ")[1].split()[0])
    assert auc > 0.9


def test_classifiers_errors_exit_with_code_2(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("positive: hq\nsources: [{input: true, label: x}]\n")
    result = cli.invoke(app, ["classifiers", "train", str(config)])
    output = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2 and "output: required key is missing" in output
    assert "outside a run give `files`" in output
    result = cli.invoke(app, ["classifiers", "eval", str(tmp_path / "none.bin"), str(config), "--label", "x"])
    assert result.exit_code == 2 and "model file not found" in " ".join(result.output.split())


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint folder, tokenizer.json) of a tiny random Llama: a model whose every prediction
    the test can work out itself, with no training and no Ray."""
    import torch

    from crawl2model.model.llama import Llama, LlamaConfig
    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe
    from crawl2model.train import checkpoint

    tmp = tmp_path_factory.mktemp("generate")
    corpus = ["the river runs by the mill, and the boats go down to the sea", "a boat, a mill, a river and a road"]
    train_bpe(iter([corpus * 20]), TrainTokenizerConfig(vocab_size=300)).save(str(tmp / "tokenizer.json"))
    from tokenizers import Tokenizer

    config = LlamaConfig(vocab_size=Tokenizer.from_file(str(tmp / "tokenizer.json")).get_vocab_size(), dim=32,
                         n_layers=2, n_heads=4, max_seq_len=64)
    torch.manual_seed(0)
    model = Llama(config)
    with torch.no_grad():  # sharper than at initialisation: clear argmaxes, and sampling far from uniform
        model.output.weight.mul_(40)
    folder = checkpoint.save(tmp / "ckpt", 1, {"model": model.state_dict()}, {"model": config.to_dict()})
    return folder, tmp / "tokenizer.json"


def test_generate_prints_what_the_model_predicts(tiny_checkpoint, reference_generate, same_text):
    from tokenizers import Tokenizer

    from crawl2model.train.pretrain import load_model

    folder, tokenizer_file = tiny_checkpoint
    model, _ = load_model(folder)
    encoder = Tokenizer.from_file(str(tokenizer_file))
    eos = encoder.token_to_id("<|endoftext|>")

    def generated(prompt: str, *options: str) -> str:
        result = cli.invoke(app, ["generate", str(folder), prompt, "--tokenizer", str(tokenizer_file),
                                  "--max-new-tokens", "16", *options])
        assert result.exit_code == 0, result.output
        return result.output

    expected = {}
    for prompt in ("the river", "a boat, a"):
        tokens = reference_generate(model, encoder.encode(prompt).ids, 16, eos_id=eos)
        assert len(set(tokens)) >= 3  # a continuation a constant token cannot imitate
        expected[prompt] = prompt + encoder.decode(tokens)
        assert same_text(generated(prompt, "--temperature", "0"), expected[prompt])
    assert expected["the river"][len("the river"):] != expected["a boat, a"][len("a boat, a"):]

    # sampling: the seed's draws from the model's filtered distribution (top_p 0.95 by default)
    sampled = {}
    for seed in (1, 2):
        tokens = reference_generate(model, encoder.encode("the river").ids, 16, eos_id=eos, temperature=1.0,
                                    top_p=0.95, seed=seed)
        sampled[seed] = generated("the river", "--temperature", "1", "--seed", str(seed))
        assert same_text(sampled[seed], "the river" + encoder.decode(tokens))
    assert sampled[1] == generated("the river", "--temperature", "1", "--seed", "1") and sampled[1] != sampled[2]
    assert not same_text(sampled[1], expected["the river"])


@pytest.mark.ray
def test_a_failing_stage_prints_one_line_and_where_its_traceback_is(finished_run, tmp_path):
    config, _ = finished_run
    raw = yaml.safe_load(config.read_text())
    raw.update(output_dir=str(tmp_path / "out"), stages=[{"name": "mixed", "type": "example_stages:Mixed"}])
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(raw))
    result = cli.invoke(app, ["run", str(broken), "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    log = tmp_path / "out" / "logs" / "run.log"
    assert lines[0].startswith("error: stage 'mixed' failed on shard 00000-00000: Arrow"), lines
    assert lines[1] == f"  fix the cause (traceback in the log), then `pipeline run {broken}` resumes: finished shards are kept"
    assert lines[2] == f"  traceback: {log} (--debug prints it here)" and len(lines) == 3
    assert "Traceback (most recent call last)" in log.read_text() and "in apply_stage" in log.read_text()
    assert "\x1b[" not in log.read_text()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["stages"]["mixed"]["status"] == "failed" and manifest["stages"]["mixed"]["error"].startswith("Arrow")
    debug = cli.invoke(app, ["run", str(broken), "--no-progress", "--debug"])
    assert debug.exit_code == 1 and debug.exception is not None  # the whole traceback, as Python prints it


@pytest.fixture(scope="module")
def filtered_run(local_ray, tmp_path_factory) -> Path:
    """A run whose gopher_quality stage removes one document for too few words and one for too few
    words with a letter, and keeps one."""
    tmp = tmp_path_factory.mktemp("reasons")
    prose = " ".join(["the", "and", *["cats dogs suns seas cars"] * 16])  # 82 words
    texts = [prose, "the and cats dogs suns", prose + " 123" * 40]
    docs = tmp / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    config = tmp / "crawl.yaml"
    config.write_text(yaml.safe_dump({"name": "reasons", "output_dir": str(tmp / "out"), "input": {"jsonl": [str(docs)]},
                                      "stages": [{"name": "gq", "type": "gopher_quality"}]}))
    run(*load_config(config), show_progress=False)
    return tmp / "out"


def one_line(output: str) -> str:
    return " ".join(output.split())  # rich wraps long lines at the runner's 80 columns


@pytest.mark.ray
def test_inspect_reason_selects_removed_documents_and_shows_their_detail(filtered_run):
    out = str(filtered_run)
    alpha = cli.invoke(app, ["inspect", out, "gq", "--reason", "alpha_words"])  # a part of the reason: implies --removed
    assert alpha.exit_code == 0, alpha.output
    assert "removed: gopher_quality:alpha_words<0.8 (alpha_words=0.672 < 0.8)" in one_line(alpha.output)
    assert "removed: gopher_quality:words<50" not in one_line(alpha.output)
    exact = cli.invoke(app, ["inspect", out, "gq", "--removed", "--reason", "gopher_quality:words<50"])
    assert "removed: gopher_quality:words<50 (words=5 < 50)" in one_line(exact.output)
    assert "alpha_words=" not in exact.output
    both = cli.invoke(app, ["inspect", out, "gq", "--reason", "words"])  # no reason is `words`: both contain it
    assert one_line(both.output).count("removed: gopher_quality:") == 2


@pytest.mark.ray
def test_inspect_reason_that_matches_nothing_lists_the_reasons(filtered_run):
    result = cli.invoke(app, ["inspect", str(filtered_run), "gq", "--reason", "stop_words"])
    assert result.exit_code == 2
    assert "reason matching 'stop_words'" in one_line(result.output)
    assert "gopher_quality:alpha_words<0.8 (1); gopher_quality:words<50 (1)" in one_line(result.output)


def test_stages_lists_every_type_with_its_options_and_defaults():
    from crawl2model.catalog import builtin_stage_types

    result = cli.invoke(app, ["stages"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output  # piped: no colour codes
    headings = [line.split()[0] for line in result.output.splitlines() if line and not line.startswith(" ")]
    assert set(builtin_stage_types()) <= set(headings)
    lines = result.output.splitlines()
    assert "gopher_quality  Gopher quality rules (Rae et al. 2021, appendix A; as FineWeb ran them through datatrove)." in lines
    assert "    min_alpha_words_ratio: float | None = 0.8" in lines
    assert "    lists_dir: str  (required)" in lines
    assert '    action: "filter" | "annotate" = "filter"' in lines


def test_stages_type_shows_one_stage_in_full():
    result = cli.invoke(app, ["stages", "badwords"])
    assert result.exit_code == 0, result.output
    text = one_line(result.output)
    assert "badwords (crawl2model.stages.badwords.BadWords)" in text
    assert "max_badword_ratio: float = 0.01 (>= 0.0, <= 1.0) Above this share of flagged words a document is removed." in text
    assert "lists_dir: str (required) Directory of lists, one file per language code." in text
    unknown = cli.invoke(app, ["stages", "badword"])
    assert unknown.exit_code == 2 and "did you mean 'badwords'?" in one_line(unknown.output)


def test_reason_matching_is_exact_before_it_is_a_part():
    from crawl2model.cli import _reasons_matching

    counts = {"url_filter:substring=casino": 3, "url_filter:substring=casino.com": 1, "url_filter:domain=a.org": 2}
    assert _reasons_matching("url_filter:substring=casino", counts, "urls") == ["url_filter:substring=casino"]
    assert _reasons_matching("casino", counts, "urls") == ["url_filter:substring=casino", "url_filter:substring=casino.com"]
    assert _reasons_matching("url_filter:", counts, "urls") == sorted(counts)  # a prefix is a part too
