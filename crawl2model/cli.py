"""The `pipeline` command: run a crawl.yaml, see what a run holds, and read its documents."""
from __future__ import annotations

import os
import sys
import textwrap
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crawl2model.pipeline import storage
from crawl2model.catalog import load_config
from crawl2model.model.special_tokens import EOS
from crawl2model.pipeline.config import ConfigError
from crawl2model.pipeline.rebuild import RebuildError, kept_shards

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="crawl2model: from raw web crawls to curated Parquet shards, on Ray.")
console = Console()
errors = Console(stderr=True)


@app.command()
def run(config: str = typer.Argument(..., help="the crawl.yaml to run"),
        address: Optional[str] = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS, else local Ray)"),
        until: Optional[str] = typer.Option(None, help="run only this stage and the stages it needs"),
        force: List[str] = typer.Option([], help="re-run this stage and all after it (repeatable)"),
        progress: bool = typer.Option(True, help="show live progress"),
        verify: bool = typer.Option(True, help="check the sha256 of a cached stage's files (sizes always)"),
        debug: bool = typer.Option(False, "--debug", help="on a failure, print the whole traceback")) -> None:
    """Run (or resume) a pipeline. Finished stages whose config and inputs did not change are skipped."""
    from crawl2model.pipeline.failures import log_traceback, summary, what_to_do
    from crawl2model.pipeline.lock import LockedError
    from crawl2model.pipeline.runner import PlanError, run as run_pipeline
    from crawl2model.report.write import REPORT, is_current

    run_config, nodes = _load(config)
    try:
        manifest = run_pipeline(run_config, nodes, address=address, until=until, force=tuple(force),
                                show_progress=progress, verify=verify)
    except (PlanError, LockedError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        errors.print(f"stopped. What finished is kept: `pipeline run {config}` resumes where this run stopped.",
                     highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except Exception as error:  # one line; the traceback goes to the run's log (Ray's are pages long)
        if debug:
            raise
        log = log_traceback(run_config.output_dir, error)
        _fail(f"{summary(error)}\n  {what_to_do(error, config)}"
              + (f"\n  traceback: {log} (--debug prints it here)" if log else ""))
    _print_status(run_config.output_dir, manifest)
    _print_skipped(run_config.output_dir)
    _print_outputs(run_config.output_dir, manifest)
    if any(not entry.cached for entry in manifest.stages.values()) or not is_current(run_config.output_dir):
        _write_report_after_run(run_config.output_dir)
    else:
        console.print(f"report: {storage.join(run_config.output_dir, REPORT)} (unchanged)", highlight=False, markup=False)


@app.command()
def ablate(config: str = typer.Argument(..., help="a crawl.yaml with an ablation stage, run before"),
           stage: Optional[str] = typer.Option(None, help="the ablation stage to run, when the config has several"),
           address: Optional[str] = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS, else local Ray)"),
           progress: bool = typer.Option(True, help="show live progress"),
           debug: bool = typer.Option(False, "--debug", help="on a failure, print the whole traceback")) -> None:
    """Run only an ablation stage, on the finished stage outputs of an earlier run of CONFIG (its
    output_dir): one model per arm and seed, scored the same way (stages/ablation.py). Nothing
    else runs: a stage it needs that has not finished, or whose options changed since, is an error."""
    from crawl2model.pipeline import records
    from crawl2model.pipeline.runner import PlanError, make_plan
    from crawl2model.pipeline.summary import manifest_path

    run_config, nodes = _load(config)
    found = [node.name for node in nodes if node.type_name == "ablation"]
    if stage is None and len(found) != 1:
        _fail(f"{config} has {len(found)} ablation stages ({', '.join(found) or 'none'}): "
              + ("add one (type: ablation)" if not found else "name one with --stage"))
    stage = stage or found[0]
    if stage not in found:
        _fail(f"{config} has no ablation stage named '{stage}'; its ablation stages: {', '.join(found) or 'none'}")
    try:
        manifest = records.read(manifest_path(run_config.output_dir), records.Manifest) or records.Manifest()
        plan = make_plan(run_config, nodes, manifest, until=stage)
    except PlanError as error:
        _fail(str(error))
    missing = [node.name for node in plan.nodes if node.name in plan.to_run and node.name != stage]
    if missing:
        _fail(f"the ablation needs stages that have not finished in {run_config.output_dir} with these options: "
              f"{', '.join(missing)}; run them first: pipeline run {config} --until {stage}")
    run(config, address=address, until=stage, force=[], progress=progress, verify=True, debug=debug)


@app.command()
def validate(config: str = typer.Argument(..., help="the crawl.yaml to check")) -> None:
    """Check a config without running anything."""
    run_config, nodes = _load(config)
    names = ", ".join(["read", *(n.name for n in nodes)])
    console.print(f"{config}: ok; stages: {names}; output in {run_config.output_dir}")


@app.command()
def status(run_dir: str = typer.Argument(..., help="a run's output_dir")) -> None:
    """Stages of a run: status, documents in and out, and whether the output is cached."""
    from crawl2model.pipeline.records import Manifest, read
    from crawl2model.pipeline.summary import manifest_path

    manifest = read(manifest_path(run_dir), Manifest)
    if manifest is None:
        _fail(f"no manifest.json in {run_dir}; is it a run's output_dir?")
    _print_status(run_dir, manifest)


@app.command()
def inspect(run_dir: str = typer.Argument(..., help="a run's output_dir"),
            stage: str = typer.Argument(..., help="stage name (see `pipeline status`)"),
            removed: bool = typer.Option(False, "--removed", help="show removed documents and why"),
            reason: Optional[str] = typer.Option(
                None, "--reason", metavar="RULE",
                help="only removed documents whose drop_reason is exactly RULE or, when none is, contains it "
                     "(`alpha_words` matches `gopher_quality:alpha_words<0.8`); implies --removed"),
            n: int = typer.Option(5, "-n", help="how many documents"),
            chars: int = typer.Option(300, help="characters of text shown per document")) -> None:
    """Print documents of a stage readably, with stats and removal reasons (and details)."""
    stage_dir = storage.join(run_dir, "stages", stage)
    stats = storage.read_json(storage.join(stage_dir, "stats.json"))
    if stats is None:
        _fail(f"stage '{stage}' has no stats in {run_dir} (not run yet, or misspelt)")
    wanted = None if reason is None else _reasons_matching(reason, stats["removed_by_reason"], stage)
    removed = removed or wanted is not None  # only removed documents have a reason
    console.print(f"[bold]{stage}[/]: {stats['docs_in']:,} in, {stats['docs_out']:,} kept, "
                  f"{stats['docs_in'] - stats['docs_out']:,} removed in {stats['wall_seconds']}s")
    for name, count in sorted(stats["removed_by_reason"].items(), key=lambda kv: -kv[1]):
        console.print(f"  {count:>8,}  {name}", highlight=False, markup=False, emoji=False)
    shown = 0
    try:
        for table in _shards(run_dir, stage, removed):
            for row in _rows_with_reasons(table, wanted).to_pylist():
                if shown == n:
                    return
                shown += 1
                _print_document(row, chars)
    except RebuildError as error:
        _fail(str(error))
    if shown == 0:
        console.print("(no documents)")


def _shards(run_dir: str, stage: str, removed: bool):
    """The stage's removed shards, or its kept ones: rebuilt when it handed them on in memory."""
    files = storage.list_files(storage.join(run_dir, "stages", stage, "removed" if removed else "kept"), ".parquet")
    if removed or files:
        return (storage.read_parquet(path) for path in files)
    return kept_shards(run_dir, stage)


def _reasons_matching(rule: str, counts: dict[str, int], stage: str) -> list[str]:
    """The drop_reasons `--reason RULE` selects: RULE itself when a document was removed for it,
    else every reason containing it; none is an error that lists the reasons there are."""
    if rule in counts:
        return [rule]
    found = sorted(name for name in counts if rule in name)
    if not found:
        there = "; ".join(f"{name} ({count:,})" for name, count in sorted(counts.items(), key=lambda kv: -kv[1]))
        _fail(f"no document of stage '{stage}' was removed for a reason matching '{rule}'; "
              + (f"its reasons: {there}" if there else "it removed nothing"))
    return found


def _rows_with_reasons(table, wanted: list[str] | None):
    """The rows of `table` whose drop_reason is one of `wanted` (all of them when None)."""
    if wanted is None:
        return table
    import pyarrow as pa
    import pyarrow.compute as pc

    return table.filter(pc.is_in(table.column("drop_reason"), value_set=pa.array(wanted, pa.string())))


@app.command("stages")
def stages_command(stage_type: Optional[str] = typer.Argument(
        None, metavar="[TYPE]", help="a stage type (or pkg.module:Class): show it in full")) -> None:
    """The stage types a crawl.yaml can name: what each does, and its options with types and defaults."""
    from crawl2model.catalog import builtin_stage_types, describe_stage

    # plain lines through typer.echo, not rich: piped into less or grep they neither wrap nor carry colour
    if stage_type is None:
        for name in builtin_stage_types():
            _print_stage_summary(describe_stage(name))
        typer.echo("`pipeline stages TYPE` shows one stage in full, with what each option means.")
        return
    try:
        info = describe_stage(stage_type)
    except LookupError as error:
        _fail(str(error))
    _print_stage_in_full(info)


OPTION_INDENT = "    "
LISTED_DEFAULT_CHARS = 60  # a longer default (a list of 159 punctuation marks) is cut in the listing


def _print_stage_summary(info) -> None:
    typer.echo(f"{typer.style(info.type_name, bold=True)}  {info.summary}")
    for option in info.options:
        typer.echo(OPTION_INDENT + _option_line(option, LISTED_DEFAULT_CHARS))
    typer.echo("")


def _print_stage_in_full(info) -> None:
    typer.echo(f"{typer.style(info.type_name, bold=True)}  ({info.qualified_name})\n")
    if info.doc:
        typer.echo(info.doc + "\n")
    typer.echo("options:" if info.options else "options: none")
    for option in info.options:
        line = _option_line(option) + (f"  ({option.limits})" if option.limits else "")
        typer.echo(OPTION_INDENT + line)
        if option.description:
            typer.echo(textwrap.fill(option.description, 100, initial_indent=OPTION_INDENT * 2,
                                     subsequent_indent=OPTION_INDENT * 2))


def _option_line(option, max_default: int | None = None) -> str:
    """`name: type = default` (`(required)` without a default), as a crawl.yaml writes the value."""
    if option.default is None:
        return f"{option.name}: {option.type}  (required)"
    default = option.default
    if max_default is not None and len(default) > max_default:
        default = default[:max_default - 1] + "…"
    return f"{option.name}: {option.type} = {default}"


@app.command("diff")
def diff_runs(run_a: str = typer.Argument(..., help="a finished run's output_dir"),
              run_b: str = typer.Argument(..., help="another run's output_dir, compared with the first"),
              json_output: bool = typer.Option(False, "--json", help="print the comparison as JSON"),
              n: int = typer.Option(5, "-n", help="documents shown each way for a stage whose kept set changed")) -> None:
    """Compare two runs stage by stage: fingerprints and why they differ, document counts, output
    files, and the documents one run kept and the other removed. Exits 0 when identical, 1 when not."""
    from crawl2model.diff.compare import NotARun, compare
    from crawl2model.diff.text import render

    try:
        result = compare(run_a, run_b, examples=n)
    except NotARun as error:
        _fail(str(error))
    if json_output:
        typer.echo(result.model_dump_json(indent=2))  # as it is: rich would wrap and colour it
    else:
        for line in render(result):  # run data (urls, reasons, option values) is never markup
            console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
    raise typer.Exit(0 if result.identical else 1)


@app.command()
def report(run_dir: str = typer.Argument(..., help="a run's output_dir (a path or an fsspec URL)"),
           out: Optional[str] = typer.Option(None, help="the file to write (default: RUN_DIR/report.html)")) -> None:
    """Write report.html: one self-contained page (it opens offline) with plots of the run's funnel,
    removal reasons and measured values, languages, lengths, duplicates, classifiers, tokens and
    training curves, and documents kept and removed. `pipeline run` writes it too."""
    from crawl2model.report.write import write_report

    try:
        path = write_report(run_dir, out)
    except FileNotFoundError as error:
        _fail(str(error))
    console.print(f"wrote {path}", highlight=False, markup=False)


def _write_report_after_run(run_dir: str) -> None:
    """The report of a finished run; a run that worked is not failed by its report."""
    from crawl2model.report.write import write_report

    try:
        console.print(f"report: {write_report(run_dir)}", highlight=False, markup=False)
    except Exception as error:  # noqa: BLE001 - any bug of the report is a warning here
        errors.print(f"warning: no report.html ({type(error).__name__}: {error}); "
                     f"`pipeline report {run_dir}` tries again", highlight=False, markup=False, soft_wrap=True)


tokens_app = typer.Typer(no_args_is_help=True, help="Token shards made by a run's `tokenize` stage.")
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("stats")
def tokens_stats(path: str = typer.Argument(..., help="a run's output_dir, or a tokens folder")) -> None:
    """Per split: shards, documents, tokens, mean tokens per document, and UTF-8 bytes per token
    (the tokenizer's compression; the EOS token that ends each document is not counted)."""
    from crawl2model.train.tokens import load_index

    try:
        index = load_index(path)
    except FileNotFoundError as error:
        _fail(str(error))
    table = Table(title=f"{index.root}  ({index.dtype}, vocabulary {index.vocab_size:,}, "
                        f"tokenizer {index.tokenizer_sha256[:12]})", title_justify="left")
    for column in ("split", "shards", "documents", "tokens", "tokens/doc", "bytes/token"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, entry in index.data["splits"].items():
        documents, tokens = entry["documents"], entry["tokens"]
        table.add_row(split, _n(len(entry["shards"])), _n(documents), _n(tokens),
                      f"{tokens / documents:,.1f}" if documents else "",
                      f"{entry['text_bytes'] / (tokens - documents):.2f}" if tokens > documents else "")
    console.print(table)


classifiers_app = typer.Typer(no_args_is_help=True, help="fastText classifiers, trained and evaluated outside a run.")
app.add_typer(classifiers_app, name="classifiers")


@classifiers_app.command("train")
def classifiers_train(config: str = typer.Argument(..., help="a YAML of train_classifier options plus `output:`")) -> None:
    """Train a classifier from labelled files (the options of a `train_classifier` stage, and
    `output:`, the model file to write) and print its held-out evaluation."""
    from crawl2model.classifiers.metrics import describe
    from crawl2model.classifiers.train import file_examples, load_job, train

    try:
        job = load_job(config)
        metadata = train(file_examples(job), job, job.output)
    except ConfigError as error:
        _fail(str(error), "config error")
    except ValueError as error:
        _fail(str(error))
    console.print(f"wrote {job.output} ({metadata['bytes']:,} bytes); labels {metadata['data']['examples']}, "
                  f"{metadata['data']['train']:,} training and {metadata['data']['validation']:,} held-out examples",
                  highlight=False)
    if metadata["metrics"]:
        console.print(describe(metadata["metrics"]), highlight=False)


@classifiers_app.command("eval")
def classifiers_eval(model: str = typer.Argument(..., help="a fastText model file"),
                     data: List[str] = typer.Argument(..., help="labelled files: JSONL, Parquet, CSV or text"),
                     text_column: str = typer.Option("text", help="the column with the text"),
                     label_column: Optional[str] = typer.Option(None, help="the column with each row's label"),
                     label: Optional[str] = typer.Option(None, help="one label for every example"),
                     map: List[str] = typer.Option([], "--map", help="rename a label value: RAW=LABEL (repeatable)"),
                     unit: str = typer.Option("line", help="plain text: one example per `line` or per `file`"),
                     positive: Optional[str] = typer.Option(None, help="the label scored (default: the model's)")) -> None:
    """Score labelled examples with a model and print ROC AUC, precision, recall and F1 at 0.5 and
    at the best threshold, and the threshold curve. Plain text without --label reads fastText's
    `__label__name text` lines."""
    from crawl2model.classifiers.data import ExampleSource, read_source
    from crawl2model.classifiers.metrics import describe, report
    from crawl2model.classifiers.model import Classifier

    try:
        source = ExampleSource(files=data, text_column=text_column, label_column=label_column, label=label, unit=unit,
                               labels=dict(item.split("=", 1) for item in map))
        source.check()
        examples = read_source(source, 0)
        classifier = Classifier.load(model, positive)
    except ValueError as error:  # pydantic's ValidationError is one too
        _fail(str(error))
    truth = [value == classifier.label for value in examples.column("label").to_pylist()]
    console.print(f"{model}: scoring label {classifier.label!r} on {examples.num_rows:,} examples", highlight=False)
    console.print(describe(report(truth, classifier.score(examples.column("text")))), highlight=False)


@app.command("train")
def train_command(tokens: str = typer.Argument(..., help="a run's output_dir, or a tokens folder"),
                  config: str = typer.Option(..., "--config", help="YAML of pretrain options (see README)"),
                  out: Optional[str] = typer.Option(None, help="checkpoint folder (default <run>/train)")) -> None:
    """Pretrain a Llama on the token shards of an earlier run, or resume it from its newest
    checkpoint. Under several GPUs: torchrun --nproc_per_node N -m crawl2model.train.pretrain (same arguments)."""
    from crawl2model.train.loop import TrainConfig, TrainingError
    from crawl2model.train.pretrain import default_out, train

    settings = _options(TrainConfig, config)
    try:
        summary = train(tokens, out or default_out(tokens), settings, log=lambda line: console.print(line, highlight=False))
    except (OSError, ValueError, TrainingError) as error:  # FileNotFoundError is an OSError
        _fail(str(error))
    console.print(f"done: step {summary['step']}, loss {summary.get('loss')}", highlight=False)


align_app = typer.Typer(no_args_is_help=True, help="Fine-tune (sft) or preference-align (dpo) a checkpoint.")
app.add_typer(align_app, name="align")


@align_app.command("sft")
def align_sft(start: str = typer.Argument(..., help="the checkpoint folder to fine-tune"),
              data: List[str] = typer.Argument(..., help="JSONL conversations (prompt/response, messages, HH pairs)"),
              config: str = typer.Option(..., "--config", help="YAML of training options (steps, lr, seq_len, ...)"),
              out: str = typer.Option(..., help="checkpoint folder to write"),
              tokenizer: Optional[str] = typer.Option(None, help="tokenizer.json (default: the checkpoint's)")) -> None:
    """Supervised fine-tuning with the chat template; loss on assistant tokens only. Resumes from
    the newest checkpoint in --out."""
    from crawl2model.train.loop import TrainConfig
    from crawl2model.train.sft import train_sft

    summary = _align(train_sft, start, data, tokenizer, out, _options(TrainConfig, config))
    console.print(f"done: step {summary['step']}, loss {summary.get('loss')}", highlight=False)


@align_app.command("dpo")
def align_dpo(start: str = typer.Argument(..., help="the checkpoint folder to align (an SFT one, usually)"),
              data: List[str] = typer.Argument(..., help="JSONL preference pairs (prompt/chosen/rejected, or HH)"),
              config: str = typer.Option(..., "--config", help="YAML of DPO options (steps, beta, lr, ...)"),
              out: str = typer.Option(..., help="checkpoint folder to write"),
              tokenizer: Optional[str] = typer.Option(None, help="tokenizer.json (default: the checkpoint's)")) -> None:
    """DPO against a frozen copy of the starting checkpoint; logs rewards and held-out accuracy."""
    from crawl2model.train.align import DPOConfig, train_dpo

    result = _align(train_dpo, start, data, tokenizer, out, _options(DPOConfig, config))
    console.print(f"done: held-out {result}", highlight=False)


def _align(trainer, start: str, data: list[str], tokenizer: str | None, out: str, settings) -> dict:
    """Run `trainer` (train_sft or train_dpo) from checkpoint `start`; errors exit 2."""
    from crawl2model.train import checkpoint

    try:
        path = checkpoint.tokenizer_file(start, tokenizer)
        return trainer(start, data, path, out, settings, log=lambda line: console.print(line, highlight=False))
    except (OSError, ValueError) as error:
        _fail(str(error))


def _options(model, path: str):
    """A pydantic model read from a YAML file, or a config-error exit naming the keys."""
    import yaml
    from pydantic import ValidationError

    from crawl2model.pipeline.config import describe_errors

    try:
        return model.model_validate(yaml.safe_load(open(path, encoding="utf-8")) or {})
    except OSError as error:
        _fail(f"{path}: {error.strerror or error}", "config error")
    except ValidationError as error:
        _fail("\n".join(describe_errors(error, model)), "config error")


@app.command()
def generate(checkpoint_dir: str = typer.Argument(..., help="a checkpoint folder (step-NNNNNN)"),
             prompt: str = typer.Argument(..., help="the text to continue"),
             tokenizer: Optional[str] = typer.Option(None, help="tokenizer.json (default: the checkpoint's own; "
                                                                 "another must be the same tokenizer)"),
             max_new_tokens: int = typer.Option(100), temperature: float = typer.Option(0.8),
             top_k: Optional[int] = typer.Option(None), top_p: Optional[float] = typer.Option(0.95),
             seed: Optional[int] = typer.Option(None),
             chat: Optional[bool] = typer.Option(None, help="wrap the prompt in the chat template (default: for "
                                                            "checkpoints made by sft or dpo)")) -> None:
    """Continue a prompt with a checkpoint's model (temperature 0: greedy). An aligned checkpoint
    answers the prompt as a user turn, and stops at the end of its own turn."""
    from tokenizers import Tokenizer

    from crawl2model.model.generate import generate as sample
    from crawl2model.train import checkpoint
    from crawl2model.train.pretrain import load_model

    try:
        model, saved = load_model(checkpoint_dir)
        path = checkpoint.tokenizer_file(checkpoint_dir, tokenizer)
        encoder = Tokenizer.from_file(path)
    except Exception as error:  # tokenizers raises a bare Exception for a bad file; ours raise ValueError
        _fail(str(error))
    if encoder.get_vocab_size() != model.config.vocab_size:
        _fail(f"{path} has {encoder.get_vocab_size():,} tokens, the model {model.config.vocab_size:,}: another tokenizer")
    if chat is None:
        chat = "aligned" in saved  # written by sft and dpo
    if chat:
        from crawl2model.train.chat import ChatTokens

        template = ChatTokens(encoder)
        ids, _ = template.encode([{"role": "user", "content": prompt}], generation_prompt=True)
        stop = template.end
    else:
        ids, stop = encoder.encode(prompt).ids, encoder.token_to_id(EOS)
    out = sample(model, ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, eos_id=stop, seed=seed)
    console.print(encoder.decode(out) if chat else prompt + encoder.decode(out), highlight=False, markup=False, emoji=False)


@app.command()
def export(checkpoint_dir: str = typer.Argument(..., help="a checkpoint folder (step-NNNNNN)"),
           out: str = typer.Argument(..., help="folder for the Hugging Face model"),
           tokenizer: Optional[str] = typer.Option(None, help="tokenizer.json (default: the checkpoint's own)")) -> None:
    """Export a checkpoint to the Hugging Face Llama format (config.json, model.safetensors,
    tokenizer), loadable with transformers' AutoModelForCausalLM.from_pretrained."""
    from crawl2model.model.hf import export_hf
    from crawl2model.train import checkpoint
    from crawl2model.train.pretrain import load_model

    try:
        model, _ = load_model(checkpoint_dir)
        folder = export_hf(model, out, checkpoint.tokenizer_file(checkpoint_dir, tokenizer))
    except (OSError, ValueError) as error:
        _fail(str(error))
    console.print(f"wrote {folder}", highlight=False)


def _print_document(row: dict, chars: int) -> None:
    body = row.get("text") or row.get("html") or ""
    # crawled text is never markup: a URL holding "[/]" neither breaks the output nor fakes a line
    console.rule(f"[bold]{escape(str(row.get('id')))}[/] {escape(str(row.get('url') or row.get('source') or ''))}")
    if row.get("drop_reason"):
        detail = f" ({row['drop_detail']})" if row.get("drop_detail") else ""
        console.print(f"[red]removed:[/] {escape(str(row['drop_reason']) + detail)}", emoji=False)
    extra = {k: v for k, v in row.items() if k not in ("id", "url", "text", "html", "drop_reason", "drop_detail")}
    console.print(", ".join(f"{k}={v}" for k, v in extra.items()), style="dim", highlight=False, markup=False,
                  emoji=False)
    console.print(textwrap.shorten(body, chars, placeholder=" …") if body else "(no text)", highlight=False, markup=False, emoji=False)


def _print_status(run_dir: str, manifest) -> None:
    table = Table(title=f"{manifest.name}  ({run_dir})", title_justify="left")
    for column in ("stage", "status", "docs in", "kept", "removed", "shards", "seconds"):
        table.add_column(column, justify="left" if column in ("stage", "status") else "right")
    for name, entry in manifest.stages.items():
        docs_in, docs_out = entry.docs_in, entry.docs_out
        state = entry.status + (" (cached)" if entry.cached else "")
        table.add_row(name, state, _n(docs_in), _n(docs_out),
                      _n(docs_in - docs_out if docs_in is not None else None),
                      _n(entry.listing.shards if entry.listing else 0),
                      "" if entry.wall_seconds is None else str(entry.wall_seconds))
    console.print(table)


def _print_skipped(run_dir: str) -> None:
    """The input files the reader could not read at all, and why (the run went on without them)."""
    stats = storage.read_json(storage.join(run_dir, "stages", "read", "stats.json")) or {}
    skipped = stats.get("files_skipped") or []
    if skipped:
        errors.print(f"{len(skipped)} input file{'s' if len(skipped) > 1 else ''} skipped (input.strict: true stops "
                     "the run instead):", highlight=False, soft_wrap=True)
        for item in skipped:
            errors.print(f"  {item['path']}: {item['reason']}", highlight=False, markup=False, emoji=False, soft_wrap=True)


def _print_outputs(run_dir: str, manifest) -> None:
    """Where the run's results are, so the next command is one copy away."""
    from crawl2model.pipeline.summary import outputs

    for what, where in outputs(run_dir, manifest):
        console.print(f"{what}: {where}", highlight=False, markup=False, soft_wrap=True)


def _n(value) -> str:
    return "" if value is None else f"{value:,}"


def _load(path: str):
    if os.getcwd() not in sys.path:  # stages given as `mymodule:MyStage` import from here, after installed
        sys.path.append(os.getcwd())  # packages: a file here named as a library (trafilatura.py) never shadows it
    try:
        return load_config(path)
    except ConfigError as error:
        _fail(str(error), "config error")


def _fail(message: str, kind: str = "error:") -> None:
    """Print `message` as it is (no rich markup: paths and reasons may hold brackets) and exit 2."""
    errors.print(f"[red]{kind}[/] ", end="")
    errors.print(message, highlight=False, markup=False, emoji=False, soft_wrap=True)  # a path stays on its line
    raise typer.Exit(2)


if __name__ == "__main__":
    app()
