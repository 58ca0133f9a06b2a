"""Direct preference optimisation: the loss, and the log-probabilities it compares.

For a pair (prompt, chosen, rejected), with log-probabilities of each response under the policy
(pi) and a frozen reference (ref):

    margin = beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected))
    loss   = -(1 - eps) * log sigmoid(margin) - eps * log sigmoid(-margin)     (eps: label smoothing)

The rewards logged are beta * (pi - ref) of each response; accuracy is how often the chosen one's
is higher. At pi == ref the margin is 0 and the loss log 2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from crawl2model.train.chat import IGNORE


def sequence_logps(model, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row, the summed log-probability of the tokens whose label is not IGNORE (each predicted
    from the tokens before it)."""
    logits, _ = model(ids)
    targets = labels[:, 1:]
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    mask = targets != IGNORE
    picked = logps.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


@torch.no_grad()
def reference_logps(reference, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """sequence_logps of the frozen reference: no graph, so no gradient ever reaches it."""
    return sequence_logps(reference, ids, labels)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1, label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict]:
    """The mean sigmoid DPO loss over a batch, and its metrics (rewards/chosen, rewards/rejected,
    rewards/margins, rewards/accuracies)."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    loss = -(1 - label_smoothing) * F.logsigmoid(margin) - label_smoothing * F.logsigmoid(-margin)
    chosen = beta * (policy_chosen - ref_chosen).detach()
    rejected = beta * (policy_rejected - ref_rejected).detach()
    metrics = {"rewards/chosen": float(chosen.mean()), "rewards/rejected": float(rejected.mean()),
               "rewards/margins": float((chosen - rejected).mean()),
               "rewards/accuracies": float((chosen > rejected).float().mean())}
    return loss.mean(), metrics
