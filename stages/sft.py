"""`sft`: supervised fine-tuning of the model a `pretrain` stage before it trained (or of `start:`)
on conversations in `data` (JSONL: `prompt`/`response`, or `messages`), with the chat template
and the pretraining loop (train/sft.py). Writes checkpoints in its artifact folder, like
`pretrain`. It removes nothing.
"""
from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from crawl2model.pipeline.global_stage import PhaseContext
from crawl2model.pipeline.stage import StageConfig
from crawl2model.pipeline.sample_data import conversations
from crawl2model.stages._training import DataOrSample, TrainingStage, bind_start, data_paths, summary_table, told
from crawl2model.train import checkpoint
from crawl2model.train.loop import TrainConfig, total_steps


class SFTConfig(StageConfig, TrainConfig, DataOrSample):  # data: JSONL files of conversations
    start: str | None = None  # a checkpoint folder; unset: the pretrain stage's last one
    tokenizer: str | None = None  # unset: the start checkpoint's own
    val_fraction: float = Field(0.05, ge=0, lt=1)
    cpus: int = Field(1, ge=1)
    gpus: int = Field(0, ge=0, le=1)


class SFT(TrainingStage):
    type_name = "sft"
    Config = SFTConfig

    @classmethod
    def steps(cls, config: SFTConfig) -> int:
        return total_steps(config, 1)

    @classmethod
    def bind(cls, config: SFTConfig, upstream) -> SFTConfig:
        from crawl2model.stages.pretrain import Pretrain

        pretrained = next((node.config for node in upstream if node.cls is Pretrain), None)
        if config.start is None and pretrained is not None and config.seq_len > pretrained.seq_len:
            raise ValueError(f"seq_len {config.seq_len} is longer than the pretrained model's {pretrained.seq_len}")
        return bind_start(config, upstream, (Pretrain,))

    @classmethod
    def data_files(cls, config: SFTConfig) -> list[str]:
        return list(config.data)

    def train(self, table: pa.Table, ctx: PhaseContext) -> pa.Table:
        import torch

        from crawl2model.train.sft import train_sft

        torch.set_num_threads(self.config.cpus)
        settings = TrainConfig.model_validate(self.config.model_dump(
            exclude={"data", "sample", "start", "tokenizer", "val_fraction", "cpus", "gpus"}))
        tokenizer = checkpoint.tokenizer_file(self.config.start, self.config.tokenizer)
        data = data_paths(self.config, ctx, conversations)
        summary = train_sft(self.config.start, data, tokenizer, ctx.artifact_dir, settings,
                            val_fraction=self.config.val_fraction, **told(ctx.say))
        return summary_table(summary)
