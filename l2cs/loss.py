"""The L2CS-Net loss: for each angle separately, cross-entropy on its bin plus
alpha times the squared error of its decoded angle (deg^2), as published."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from l2cs.bins import BinSpec


def angle_loss(logits: torch.Tensor, target_deg: torch.Tensor, bins: BinSpec, alpha: float) -> torch.Tensor:
    """CE(logits, bin of target) + alpha * MSE(decode(logits), target), batch means."""
    classification = F.cross_entropy(logits.float(), bins.to_bin(target_deg))
    regression = F.mse_loss(bins.decode(logits), target_deg.float())
    return classification + alpha * regression


def l2cs_loss(pitch_logits: torch.Tensor, yaw_logits: torch.Tensor, target_deg: torch.Tensor,
              bins: BinSpec, alpha: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss (pitch loss + yaw loss) and its two parts, detached (reading them is the caller's GPU sync).

    `target_deg` is (N, 2): column 0 pitch, column 1 yaw. Summing the two
    losses before `backward` gives the same gradients as the reference's
    `torch.autograd.backward([loss_pitch, loss_yaw], [1, 1])`.
    """
    pitch = angle_loss(pitch_logits, target_deg[:, 0], bins, alpha)
    yaw = angle_loss(yaw_logits, target_deg[:, 1], bins, alpha)
    return pitch + yaw, {"pitch": pitch.detach(), "yaw": yaw.detach()}
