"""`ablation`: one small model per data **arm**, each trained on the same token budget with the
same tokenizer, architecture, sequence length and seeds, and all scored the same way: does a
filter make a better model for the same compute?

An arm names a stage upstream of this one whose kept documents it trains on (`arms: {raw:
extract, curated: exact_dedup}`). Phases (see pipeline/global_stage.py), over "partitions": there
are arms x seeds of them, partition `p` being arm `p // seeds`, seed `p % seeds`:

1. `tokenize`: partition `a` (< the number of arms) tokenizes arm `a`'s kept documents (read
   through the manifest's listing of its stage, `stages/<stage>/files.parquet`) with the `tokenize`
   stage's own phases (encode, write, index) into `phases/arms/<arm>/tokens/`, run in this task;
   the texts of its `val` documents are kept beside (`val.parquet`), for the arm's own bits per byte.
2. `train`: one training per (arm, seed), a Ray task each, with the run's pretraining code
   (train/pretrain.py `train`), for `budget` tokens: every arm takes the same number of steps of
   the same batch. An arm with fewer tokens repeats its data (the loader starts a new epoch in a
   new order); `epochs` says how many times it saw them. Checkpoints and metrics.jsonl go to
   `artifact/<arm>/seed-<k>/`; a killed training resumes from its newest checkpoint.
3. `score`: each final checkpoint, the same way (train/scoring.py): bits per byte of the arm's own
   `val` documents and of each reference set, and multiple-choice accuracy (`acc`, `acc_norm`) on
   the tasks: a JSONL file (`tasks:`), or cloze tasks made from the reference texts (train/cloze.py,
   seeded). Tasks a choice of which does not fit the model's context are left out (counted).
4. `report`, once: `artifact/ablation.json` (stages/_ablation_report.py) and the tasks scored
   (`artifact/tasks.jsonl`).

Reference sets are required: an arm's own validation split favours that arm's distribution, so
only text outside every arm, which the user trusts (a held-out encyclopedia, books), compares
them fairly. Training seed `k` is the stage's `seed + k`, for every arm: arms of one seed start
from the same initial weights. The stage removes nothing; the training settings are
`pretrain`'s (train/loop.py TrainConfig), with `budget` for its `tokens` and a preset's defaults
(stages/_ablation_config.py: `cpu`, or GPU presets at the scale of DCLM and FineWeb). `pipeline
ablate CONFIG` runs this stage alone on an earlier run's finished stages.
"""
from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.compute as pc

from crawl2model.pipeline import records, storage
from crawl2model.pipeline.global_stage import GlobalStage, Phase, PhaseContext, partition_name
from crawl2model.pipeline.stage import Resources
from crawl2model.stages._ablation_config import AblationConfig
from crawl2model.stages._training import told
from crawl2model.stages.tokenize import Tokenize, TokenizeConfig, bind_tokenizer
from crawl2model.train.loop import total_steps

ARM_FINGERPRINT = "ablation-arm"  # of the tokenize phases run inside an arm's task (see _tokenize_arm)
SCORE_TOKENS = 16384  # tokens (windows x seq_len) a scoring batch holds


class ArmTokenize(Tokenize):
    """The tokenize stage's phases, keeping the text of each `val` document in its encode output
    (null for the others), so that an arm's own val split can be scored in bits per byte."""

    def encode(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        encoded = super().encode(table, ctx)
        text = table.column("text")
        return encoded.append_column("text", pc.if_else(pc.equal(encoded.column("split"), "val"), text,
                                                        pa.nulls(table.num_rows, text.type)))


class Ablation(GlobalStage):
    type_name = "ablation"
    Config = AblationConfig
    requires = ()
    packages = ("torch", "tokenizers")
    makes_artifact = True

    @classmethod
    def bind(cls, config: AblationConfig, upstream) -> AblationConfig:
        names = [node.name for node in upstream]
        for arm, stage in config.arms.items():
            if stage not in names:
                raise ValueError(f"arms.{arm}: no stage '{stage}' upstream of this one; the stages it reads from: "
                                 f"{', '.join(names) or 'none'} (put the ablation after every arm's stage)")
        return bind_tokenizer(config, upstream, "the ablation")

    @classmethod
    def reads_documents_of(cls, config: AblationConfig) -> list[str]:
        return sorted(set(config.arms.values()))

    @classmethod
    def data_files(cls, config: AblationConfig) -> list[str]:
        """Files from outside the run: their contents re-run the stage when they change."""
        files = [path for paths in config.reference.values() for path in paths]
        files += [config.tasks] if config.tasks else []
        return files + Tokenize.data_files(config)

    @classmethod
    def resources_for(cls, config: AblationConfig) -> Resources:
        return Resources(cpus=config.cpus, gpus=config.gpus)

    def partitions(self, documents: int, cpus: int) -> int:
        return len(self.config.arms) * self.config.seeds

    def phases(self) -> list[Phase]:
        return [Phase("tokenize", "partitions"), Phase("train", "partitions"), Phase("score", "partitions"),
                Phase("report", "once")]

    # --- where things are --------------------------------------------------------------------------

    def job(self, partition: int, ctx: PhaseContext | None = None) -> tuple[str, int]:
        """(arm, seed index) of a partition."""
        jobs = len(self.config.arms) * self.config.seeds
        if ctx is not None and ctx.partitions != jobs:
            raise ValueError(f"the ablation's phases run over {jobs} partitions (arms x seeds), not {ctx.partitions}")
        return list(self.config.arms)[partition // self.config.seeds], partition % self.config.seeds

    @staticmethod
    def arm_dir(ctx: PhaseContext, arm: str) -> str:
        return storage.join(ctx.phases_dir, "arms", arm)

    @classmethod
    def tokens_dir(cls, ctx: PhaseContext, arm: str) -> str:
        return storage.join(cls.arm_dir(ctx, arm), "tokens")

    @staticmethod
    def run_dir(ctx: PhaseContext) -> str:
        return ctx.artifact_dir.rsplit("/stages/", 1)[0]

    @staticmethod
    def out_dir(ctx: PhaseContext, arm: str, index: int) -> str:
        return storage.join(ctx.artifact_dir, arm, f"seed-{index}")

    # --- phases ------------------------------------------------------------------------------------

    def tokenize(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        self.job(ctx.partition, ctx)
        if ctx.partition >= len(self.config.arms):
            return pa.table({})
        arm = list(self.config.arms)[ctx.partition]
        return pa.Table.from_pylist([self._tokenize_arm(arm, ctx)])

    def _tokenize_arm(self, arm: str, ctx: PhaseContext) -> dict:
        """The arm's kept documents through the tokenize stage's phases, in this task, with their
        own done records (resumable; the ablation's folder is cleared when its fingerprint changes)."""
        from crawl2model.pipeline.plan import StageNode
        from crawl2model.pipeline.worker import run_phases
        from crawl2model.train.tokens import INDEX

        stage, run_dir = self.config.arms[arm], self.run_dir(ctx)
        kept = arm_documents(run_dir, stage)
        if not kept:
            raise ValueError(f"arm {arm}: stage {stage} kept no documents")
        config = TokenizeConfig(tokenizer=self.config.tokenizer, trained_by=self.config.trained_by,
                                val_fraction=self.config.val_fraction, seed=self.config.seed or 0)
        node = StageNode(f"{ctx.stage}:{arm}", ArmTokenize, config, run_dir=run_dir, fingerprint=ARM_FINGERPRINT)
        shards = [(f"{i:05d}", storage.absolute(info.path, run_dir)) for i, info in enumerate(kept)]
        tokens = self.tokens_dir(ctx, arm)
        sub = PhaseContext(storage.join(self.arm_dir(ctx, arm), "phases"),
                           ArmTokenize(config).partitions(sum(info.rows for info in kept), 1),
                           tuple(unit for unit, _ in shards), tuple(path for _, path in shards), tokens,
                           ctx.stage, tell=ctx.tell)
        run_phases(node, sub, shards)
        val = sub.read("encode", columns=["key", "text"], filter=pc.field("split") == "val")
        texts = val.sort_by("key").column("text") if val.num_rows else pa.array([], pa.string())
        storage.write_parquet(storage.join(self.arm_dir(ctx, arm), "val.parquet"), pa.table({"text": texts}))
        splits = json.loads(storage.read_bytes(storage.join(tokens, INDEX)))["splits"]
        return {"arm": arm, "stage": stage, "documents": sum(info.rows for info in kept),
                "tokens": splits["train"]["tokens"], "train_documents": splits["train"]["documents"],
                "val_tokens": splits["val"]["tokens"], "val_documents": splits["val"]["documents"],
                "text_bytes": splits["train"]["text_bytes"] + splits["val"]["text_bytes"]}

    def train(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        import torch

        from crawl2model.train.pretrain import train

        arm, index = self.job(ctx.partition, ctx)
        config = self.config.train_config(index)
        made = ctx.read("tokenize").to_pylist()
        tokens = next(row["tokens"] for row in made if row["arm"] == arm)
        if (tokens - 1) // config.seq_len < config.batch_size:
            raise ValueError(f"arm {arm}: {tokens:,} training tokens make fewer windows of {config.seq_len} than one "
                             f"batch ({config.batch_size}): lower seq_len or batch_size, or give the arm more documents")
        torch.set_num_threads(self.config.cpus)
        say = (lambda event: ctx.say({**event, "note": f"{arm} seed {config.seed}: {event['note']}"}
                                     if "note" in event else event))
        summary = train(self.tokens_dir(ctx, arm), self.out_dir(ctx, arm, index), config, **told(say))
        steps = total_steps(config, 1)
        trained = steps * config.batch_size * config.grad_accum * config.seq_len
        return pa.Table.from_pylist([{"arm": arm, "index": index, "seed": config.seed, "steps": steps,
                                      "trained_tokens": trained, "loss": summary.get("loss")}])

    def score(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        import torch

        from crawl2model.train import checkpoint
        from crawl2model.train.loop import pick_device
        from crawl2model.train.pretrain import load_model
        from crawl2model.train.scoring import bits_per_byte, multiple_choice, read_texts

        arm, index = self.job(ctx.partition, ctx)
        config = self.config.train_config(index)
        torch.set_num_threads(self.config.cpus)
        final = checkpoint.step_dir(self.out_dir(ctx, arm, index), total_steps(config, 1))
        model, _ = load_model(final, pick_device(config, 0))
        tokenizer = load_tokenizer(storage.join(final, "tokenizer.json"))
        batch = max(1, SCORE_TOKENS // self.config.seq_len)
        scores = {}
        own = read_texts([storage.join(self.arm_dir(ctx, arm), "val.parquet")])
        if own:
            scores["val_bits_per_byte"] = bits_per_byte(model, tokenizer, own, batch_size=batch).bits_per_byte
        for name, paths in self.config.reference.items():
            score = bits_per_byte(model, tokenizer, read_texts(paths), batch_size=batch)
            scores[f"reference:{name}"] = score.bits_per_byte
        tasks, _ = self.tasks_for(tokenizer)
        if tasks:
            found = multiple_choice(model, tokenizer, tasks, batch_size=batch)
            scores["acc"], scores["acc_norm"] = found["acc"], found["acc_norm"]
        return pa.Table.from_pylist([{"arm": arm, "index": index, "scores": json.dumps(scores, sort_keys=True),
                                      "parameters": sum(p.numel() for p in model.parameters())}])

    def tasks_for(self, tokenizer) -> tuple[list, dict]:
        """The tasks every arm is scored on, and what they are: those of `tasks:` or cloze tasks from
        the reference texts, less those a choice of which does not fit the model's context (the
        tokenizer is the same for every arm, so the same tasks are left out of every arm's score)."""
        from crawl2model.train.cloze import cloze_tasks
        from crawl2model.train.scoring import choice_tokens, read_tasks, read_texts

        if self.config.tasks:
            found, source = read_tasks(self.config.tasks), self.config.tasks
        else:
            texts = [text for paths in self.config.reference.values() for text in read_texts(paths)]
            found = cloze_tasks(texts, self.config.cloze_tasks, self.config.cloze_choices, seed=self.config.seed or 0)
            source = "cloze tasks from the reference texts"
        fits = [task for task in found
                if all(0 < len(choice_tokens(tokenizer, task.context, choice)[1]) <= self.config.seq_len
                       for choice in task.choices)]
        return fits, {"source": source, "n": len(fits), "left_out": len(found) - len(fits),
                      "why_left_out": f"a choice longer than seq_len ({self.config.seq_len}) tokens"}

    def report(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        from crawl2model.stages._ablation_report import ablation_report
        from crawl2model.train.scoring import write_tasks

        tokenizer = load_tokenizer(self.config.tokenizer)
        tasks, about = self.tasks_for(tokenizer)
        if tasks:
            write_tasks(tasks, storage.join(ctx.artifact_dir, "tasks.jsonl"))
        runs = {(row["arm"], row["index"]): row for row in ctx.read("train").to_pylist()}
        for row in ctx.read("score").to_pylist():
            runs[row["arm"], row["index"]].update(scores=json.loads(row["scores"]), parameters=row["parameters"])
        for partition in range(ctx.partitions):
            arm, index = self.job(partition)
            row = runs[arm, index]
            lines = storage.read_bytes(storage.join(self.out_dir(ctx, arm, index), "metrics.jsonl")) or b""
            row["metrics"] = [json.loads(line) for line in lines.decode().splitlines()]
            done = records.read(storage.join(ctx.phases_dir, "train", "_done", f"{partition_name(partition)}.json"),
                                records.PhaseRecord)  # the training task's own start and end
            row["seconds"] = round(done.finished - done.started, 3) if done else None
        made = ablation_report(self.config, ctx.read("tokenize").to_pylist(), runs, about)
        storage.write_json(storage.join(ctx.artifact_dir, "ablation.json"), made, sort_keys=False)
        best = min(made["arms"], key=lambda arm: made["arms"][arm]["mean"].get("reference", math.inf))
        return pa.table({"arms": [len(made["arms"])], "runs": [len(runs)], "best_on_reference": [best]})


def arm_documents(run_dir: str, stage: str) -> list:
    """The kept shards of a finished stage of the run (its listing, named by its manifest entry)."""
    from crawl2model.pipeline.records import Manifest
    from crawl2model.pipeline.summary import manifest_path, stage_files

    manifest = records.read(manifest_path(run_dir), Manifest)
    entry = manifest.stages.get(stage) if manifest else None
    if entry is None or entry.status != "done":
        raise ValueError(f"stage {stage} has not finished in {run_dir}: an arm trains on what a finished stage kept")
    return stage_files(run_dir, entry).kept


def load_tokenizer(path: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(storage.local_copy(path))
