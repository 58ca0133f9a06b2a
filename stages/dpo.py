"""`dpo`: preference alignment (DPO) of the model an `sft` stage before it fine-tuned (else the
`pretrain` stage's, or `start:`) on the pairs in `data` (JSONL: prompt/chosen/rejected, or
HH-RLHF's dialogue pairs); train/align.py does the work. Writes its checkpoint and metrics.jsonl
(with the rewards) in its artifact folder. It removes nothing.
"""
from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from crawl2model.pipeline.global_stage import PhaseContext
from crawl2model.pipeline.stage import StageConfig
from crawl2model.pipeline.sample_data import preference_pairs
from crawl2model.stages._training import DataOrSample, TrainingStage, bind_start, data_paths, summary_table, told
from crawl2model.train import checkpoint
from crawl2model.train.align import DPOConfig


class DPOStageConfig(StageConfig, DPOConfig, DataOrSample):  # data: JSONL (or .jsonl.gz) files of preference pairs
    start: str | None = None  # a checkpoint folder; unset: the sft (else pretrain) stage's last one
    tokenizer: str | None = None  # unset: the start checkpoint's own
    cpus: int = Field(1, ge=1)


class DPO(TrainingStage):
    type_name = "dpo"
    Config = DPOStageConfig

    @classmethod
    def steps(cls, config: DPOStageConfig) -> int:
        return config.steps

    @classmethod
    def bind(cls, config: DPOStageConfig, upstream) -> DPOStageConfig:
        from crawl2model.stages.pretrain import Pretrain
        from crawl2model.stages.sft import SFT

        return bind_start(config, upstream, (SFT, Pretrain))

    @classmethod
    def data_files(cls, config: DPOStageConfig) -> list[str]:
        return list(config.data)

    def train(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        import torch

        from crawl2model.train.align import DPOConfig, train_dpo

        torch.set_num_threads(self.config.cpus)
        settings = DPOConfig.model_validate(self.config.model_dump(exclude={"data", "sample", "start", "tokenizer", "cpus"}))
        tokenizer = checkpoint.tokenizer_file(self.config.start, self.config.tokenizer)
        data = data_paths(self.config, ctx, preference_pairs)
        result = train_dpo(self.config.start, data, tokenizer, ctx.artifact_dir, settings, **told(ctx.say))
        return summary_table({key.replace("/", "_"): value for key, value in result.items()})
