"""`train_classifier`: a fastText classifier trained inside the run, for `quality_classifier` or
`toxicity_classifier` after it.

Examples come from `sources` (see classifiers/data.py): labelled files, and the documents this
stage receives, sampled with a seed (negatives drawn from the crawl itself, against positives from
a reference corpus, as GPT-3, CCNet and DCLM do). Phases (see pipeline/global_stage.py):

1. `sample`, per shard (only with an `input` source): each input source's documents with the
   smallest seeded keys of their ids, up to its `max_documents`.
2. `train`, once: the global sample and the file examples, then classifiers/train.py: a seeded
   held-out split, fastText, the evaluation report. Writes `model.bin` (`.ftz` when quantized)
   and `model.json` (labels, settings, data fingerprint, metrics) in the stage's artifact folder.

The stage removes nothing: its documents out are its documents in. An apply stage
after it finds the model by itself (or by `trained_by:`), so a changed training set re-runs the
stages that score with it. `threads: 1` (the default) keeps the model the same from run to run.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from crawl2model.classifiers.data import ExampleSource
from crawl2model.classifiers.train import TrainingConfig, file_examples, train as train_model
from crawl2model.pipeline import storage
from crawl2model.pipeline.global_stage import GlobalStage, Phase, PhaseContext
from crawl2model.pipeline.sampling import seeded_order
from crawl2model.pipeline.stage import Resources, StageConfig

DEFAULT_INPUT_SAMPLE = 10_000  # documents of an `input` source without max_documents


class TrainClassifierConfig(StageConfig, TrainingConfig):
    pass


class TrainClassifier(GlobalStage):
    type_name = "train_classifier"
    Config = TrainClassifierConfig
    requires = ("id", "text")
    packages = ("fasttext-modern",)
    resources = Resources(cpus=1)
    makes_artifact = True

    @staticmethod
    def model_path(config: TrainClassifierConfig, artifact_dir: str) -> str:
        return storage.join(artifact_dir, "model.ftz" if config.quantize else "model.bin")

    @classmethod
    def data_files(cls, config: TrainClassifierConfig) -> list[str]:
        """The labelled files: a changed training set re-runs the stage and what scores with it."""
        return [path for source in config.sources for path in source.paths()]

    def phases(self) -> list[Phase]:
        sampled = any(source.input for source in self.config.sources)
        return ([Phase("sample", "shards", columns=("id", "text"))] if sampled else []) + [Phase("train", "once")]

    def _limit(self, source: ExampleSource) -> int:
        return source.max_documents or DEFAULT_INPUT_SAMPLE

    def _seed(self, index: int) -> int:
        """Each source samples with its own seed (as file sources do), so two draw different documents."""
        return (self.config.seed or 0) + index

    def sample(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        parts = []
        for index, source in enumerate(self.config.sources):
            if source.input:
                chosen, keys = seeded_order(table.column("id"), self._seed(index), self._limit(source))
                parts.append(pa.table({"source": pa.array([index] * len(chosen), pa.int32()),
                                       "key": keys[chosen], "text": table.column("text").take(chosen)}))
        return pa.concat_tables(parts) if parts else pa.table({})

    def _examples(self, ctx: PhaseContext) -> pa.Table:
        """The file examples, then each input source's global sample (its smallest keys)."""
        tables = [file_examples(self.config)]
        for index, source in enumerate(self.config.sources):
            if source.input:
                rows = ctx.read("sample", columns=["key", "text"], filter=pc.field("source") == index)
                if rows.num_rows:
                    rows = rows.take(pc.sort_indices(rows, [("key", "ascending")])[:self._limit(source)])
                    tables.append(pa.table({"text": rows.column("text").cast(pa.string()),
                                            "label": pa.array([source.label] * rows.num_rows, pa.string())}))
        return pa.concat_tables(tables)

    def train(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        path = self.model_path(self.config, ctx.artifact_dir)
        metadata = train_model(self._examples(ctx), self.config, path, {"trained_by": ctx.stage})
        for label, count in metadata["data"]["examples"].items():
            self.counters[f"label:{label}"] = count
        result = metadata["metrics"] or {}
        best = result.get("best_f1") or {}
        # the model's path inside the artifact folder: an absolute one would differ from run dir to run dir
        return pa.table({"path": [storage.relative(path, ctx.artifact_dir)], "sha256": [metadata["sha256"]],
                         "roc_auc": [result.get("roc_auc")],
                         "best_f1": [best.get("f1")], "best_threshold": [best.get("threshold")]},
                        schema=pa.schema([("path", pa.string()), ("sha256", pa.string()), ("roc_auc", pa.float64()),
                                          ("best_f1", pa.float64()), ("best_threshold", pa.float64())]))
