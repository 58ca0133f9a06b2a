"""How a model spreads over the processes of a job: a device mesh of pipeline (pp), data (dp)
and tensor (tp) parallel dimensions, `pp x dp x tp` processes in all.

    parallel: {tp: 2}                  # 2 processes: each holds half of every block's heads
    parallel: {pp: 2, schedule: gpipe} # 2 processes: each holds half of the layers
    parallel: {dp: 2, tp: 2, fsdp: true}

- **tp**: torch's DTensor tensor parallelism. In each block, wq/wk/wv and w1/w3 are split by
  output columns (a rank computes its share of the heads and of the SwiGLU width), wo and w2 by
  input rows, whose partial sums one all-reduce joins. Embedding, norms and output stay whole on
  every rank (they are a small share of the weights of a model that needs tp).
- **pp**: `torch.distributed.pipelining`. Rank i of the pipe keeps its run of layers (the first
  also the embedding, the last the norm and output) under their own names, so a checkpoint is the
  same whichever way the layers were split; a step runs `microbatches` micro-batches through the
  GPipe or 1F1B schedule.
- **dp**: replicas that each see their share of the batch. Alone, DDP, or FSDP2 (`fully_shard`)
  with `fsdp: true`; beside tp or pp it is always FSDP2 over the mesh's dp dimension.

`dp` defaults to the processes tp and pp leave. The old `parallel: ddp` and `parallel: fsdp` mean
`{fsdp: false}` and `{fsdp: true}`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from crawl2model.model.llama import Llama, lm_loss


class ParallelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dp: int | None = Field(None, ge=1)  # data-parallel replicas (None: the processes tp and pp leave)
    tp: int = Field(1, ge=1)  # tensor-parallel ranks: each holds n_heads / tp heads of every block
    pp: int = Field(1, ge=1)  # pipeline stages: each holds n_layers / pp layers
    fsdp: bool = False  # shard weights, gradients and optimizer state over dp (FSDP2); DDP otherwise
    schedule: Literal["gpipe", "1f1b"] = "1f1b"  # with pp
    microbatches: int | None = Field(None, ge=1)  # per step, with pp (None: 2 x pp); divides batch_size

    @model_validator(mode="before")
    @classmethod
    def _named(cls, value):
        """The settings before meshes: `ddp` and `fsdp`, data parallelism alone."""
        if value in ("ddp", "fsdp"):
            return {"fsdp": value == "fsdp"}
        if isinstance(value, str):
            raise ValueError(f"{value!r} is not a parallel layout: give ddp, fsdp, or {{dp: N, tp: N, pp: N, fsdp: bool}}")
        return value

    def check(self, model, batch_size: int, world: int | None = None) -> list[str]:
        """What makes this layout impossible for this model (a LlamaConfig, or the `model:`
        settings), batch and number of processes (when known), all of it."""
        problems, kv_heads = [], model.n_kv_heads or model.n_heads
        if model.n_heads % self.tp or kv_heads % self.tp:
            problems.append(f"tp {self.tp} must divide n_heads ({model.n_heads}) and n_kv_heads ({kv_heads})")
        if model.n_layers < self.pp:
            problems.append(f"pp {self.pp} stages need at least as many layers (the model has {model.n_layers})")
        if self.pp > 1 and model.tie_embeddings:
            problems.append("tie_embeddings cannot be split across pipeline stages (the embedding is on the first, "
                            "the output on the last): untie them or set pp: 1")
        if self.pp > 1 and batch_size % self.micro:
            problems.append(f"batch_size {batch_size} must be a multiple of microbatches ({self.micro})")
        return problems + ([] if world is None else self.check_world(world))

    def check_world(self, world: int) -> list[str]:
        """What makes this layout impossible for a job of `world` processes."""
        problems, dp = [], self.replicas(world)
        if dp * self.tp * self.pp != world:
            problems.append(f"dp {dp} x tp {self.tp} x pp {self.pp} is {dp * self.tp * self.pp} processes, but the "
                            f"job has {world}")
        if dp > 1 and (self.tp > 1 or self.pp > 1) and not self.fsdp:
            problems.append("beside tp or pp, the data-parallel dimension is FSDP2: set fsdp: true")
        return problems

    def replicas(self, world: int) -> int:
        return self.dp or max(1, world // (self.tp * self.pp))

    @property
    def micro(self) -> int:
        return self.microbatches or 2 * self.pp


@dataclass
class Layout:
    """This process's place in the mesh. `mesh` is None for a single process."""

    dp: int = 1
    tp: int = 1
    pp: int = 1
    dp_rank: int = 0
    pp_rank: int = 0
    mesh: object = None  # torch.distributed.DeviceMesh with dims ("pp", "dp", "tp")

    @property
    def first(self) -> bool:
        return self.pp_rank == 0

    @property
    def last(self) -> bool:
        return self.pp_rank == self.pp - 1

    def group(self, dim: str):
        return self.mesh[dim].get_group() if self.mesh is not None and getattr(self, dim) > 1 else None


def layout_for(config: ParallelConfig, world: int, device: str) -> Layout:
    """The mesh of a job of `world` processes (torch.distributed already started when world > 1)."""
    problems = config.check_world(world)
    if problems:
        raise ValueError(f"parallel: {'; '.join(problems)}")
    dp = config.replicas(world)
    if world == 1:
        return Layout()
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device.split(":")[0], (config.pp, dp, config.tp), mesh_dim_names=("pp", "dp", "tp"))
    return Layout(dp, config.tp, config.pp, mesh["dp"].get_local_rank(), mesh["pp"].get_local_rank(), mesh)


def parallelize(model: Llama, config: ParallelConfig, layout: Layout, device: str) -> torch.nn.Module:
    """`model` cut to this rank's pipeline stage, split across tp, wrapped for dp; in place where
    torch does it in place. Returns the module to train and checkpoint."""
    if layout.pp > 1:
        keep_stage(model, layout.pp_rank, layout.pp)
    if layout.tp > 1:
        split_heads(model, layout.mesh["tp"])
    if layout.dp > 1 and config.fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in model.layers.values():
            fully_shard(block, mesh=layout.mesh["dp"])
        return fully_shard(model, mesh=layout.mesh["dp"])
    if layout.dp > 1:
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[torch.device(device).index]
                                                         if device.startswith("cuda") else None)
    return model


def keep_stage(model: Llama, stage: int, stages: int) -> None:
    """Drop what pipeline `stage` of `stages` does not run: the layers of other stages (an even
    split, the first stages one more when it is not), the embedding unless first, the final norm
    and output unless last."""
    share, extra = divmod(model.config.n_layers, stages)
    first = stage * share + min(stage, extra)
    mine = range(first, first + share + (stage < extra))
    for name in [n for n in model.layers if int(n) not in mine]:
        del model.layers[name]
    if stage > 0:
        model.tok_embeddings = None
    if stage < stages - 1:
        model.norm, model.output = None, None


def split_heads(model: Llama, mesh) -> None:
    """Tensor parallelism of every block: column-wise q/k/v and w1/w3, row-wise wo and w2."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    plan = {"attention.wq": ColwiseParallel(), "attention.wk": ColwiseParallel(), "attention.wv": ColwiseParallel(),
            "attention.wo": RowwiseParallel(), "feed_forward.w1": ColwiseParallel(),
            "feed_forward.w3": ColwiseParallel(), "feed_forward.w2": RowwiseParallel()}
    for block in model.layers.values():
        parallelize_module(block, mesh, plan)


class _StageModule(torch.nn.Module):
    """The pipeline's view of a stage: one tensor in (tokens or hidden states), one out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


class Pipeline:
    """This rank's stage of the pipeline and its schedule. `step(inputs, targets)` runs the
    forward and backward passes of every micro-batch and returns the batch's mean loss, the same
    on every rank of the pipe (the last stage computes it, the others are told)."""

    def __init__(self, model: torch.nn.Module, config: ParallelConfig, layout: Layout, device: str, grad_accum: int):
        from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

        self.layout, self.device = layout, device
        stage = PipelineStage(_StageModule(model), layout.pp_rank, layout.pp, torch.device(device),
                              group=layout.group("pp"))
        schedule = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}[config.schedule]
        # the schedule averages micro-batches; dividing by grad_accum averages its calls too
        self.schedule = schedule(stage, config.micro, loss_fn=lambda logits, t: lm_loss(logits, t) / grad_accum)

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        losses: list[torch.Tensor] = []
        args = (inputs,) if self.layout.first else ()
        if self.layout.last:
            self.schedule.step(*args, target=targets, losses=losses)
        else:
            self.schedule.step(*args)
        loss = torch.stack(losses).mean() if losses else torch.zeros((), device=self.device)
        torch.distributed.all_reduce(loss, group=self.layout.group("pp"))  # the last stage's, to all
        return float(loss)


def held_weights(model: torch.nn.Module) -> int:
    """How many of the model's weights this process holds (its shards' and its stage's)."""
    from torch.distributed.tensor import DTensor

    return sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in model.parameters())


def clip_grad_norm(parameters, max_norm: float, layout: Layout) -> float:
    """Scale the gradients so that their global norm is at most `max_norm`; returns the norm
    before. The norm covers every process's share: sharded gradients (DTensors of FSDP2 and tp)
    reduce their own, and the stages of a pipeline add theirs."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in parameters if p.grad is not None]
    squares = torch.zeros((), dtype=torch.float32, device=grads[0].device if grads else "cpu")
    for grad in grads:
        norm = torch.linalg.vector_norm(grad, dtype=torch.float32)
        squares += (norm.full_tensor() if isinstance(norm, DTensor) else norm) ** 2
    if layout.pp > 1:
        torch.distributed.all_reduce(squares, group=layout.group("pp"))
    total = float(squares.sqrt())
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for grad in grads:
            grad.mul_(scale)
    return total
