"""RITnet's training loss (reference `train.py` and `utils.py`; paper section
"Loss functions"):

    loss = CE_boundary + alpha * GDL + (1 - alpha) * SL

* CE_boundary: per-pixel cross-entropy, each pixel weighted by
  (1 + boundary weight), the weight being 20 on the class boundaries
  (`ritnet.targets.boundary_weights`), averaged over all pixels.
  DELIBERATE DEVIATION from the reference code, which follows the paper's
  per-pixel weighting: the reference takes `nn.NLLLoss()` with its default
  mean reduction, so the cross-entropy is already ONE scalar (the batch
  mean) before it is multiplied by (1 + weights) and averaged; it then
  equals mean(CE) * mean(1 + weights), and the boundary pixels get no
  extra weight at all (the factor only rescales the whole term by how much
  boundary an image has). We weight each pixel's cross-entropy, as the
  paper describes.
* GDL: generalised Dice loss (Sudre et al., 2017) on the softmax, with
  class weights 1 / max(n_c^2, 1e-5) where n_c is the class's pixel count
  in that image, per image, averaged over the batch (reference
  `GeneralizedDiceLoss`: an absent class gets the weight 1e5, so predicting
  it where it is not is strongly penalised).
* SL: surface loss (Kervadec et al., 2019): softmax probabilities times the
  signed distance maps (`ritnet.targets.distance_maps`), averaged over
  pixels, classes and images.
* alpha, the epoch schedule (`dice_weight`): the reference builds
  `alpha[e] = 1 - (e + 1) / min(125, epochs)` for its 0-based epochs
  e < 125, and 1 from the 126th epoch on. With 1-based epochs that is
  1 - epoch / min(125, epochs): the Dice weight falls linearly from
  1 - 1/E to 0 at epoch E = min(125, epochs), the surface-loss weight
  rises from 1/E to 1; after epoch 125 (only when training longer than 125
  epochs) the reference switches back to Dice alone.

All terms are computed in float32 (also under autocast).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

DICE_EPSILON = 1e-5
SCHEDULE_EPOCHS = 125  # the reference's ramp length


def boundary_weighted_cross_entropy(logits: torch.Tensor, class_map: torch.Tensor,
                                    boundary_weights: torch.Tensor) -> torch.Tensor:
    """mean over pixels of (1 + boundary_weights) * CE(pixel); logits (N,C,H,W), maps (N,H,W)."""
    per_pixel = F.cross_entropy(logits.float(), class_map.long(), reduction="none")
    return ((1.0 + boundary_weights.float()) * per_pixel).mean()


def generalised_dice_loss(logits: torch.Tensor, class_map: torch.Tensor, epsilon: float = DICE_EPSILON) -> torch.Tensor:
    """Batch mean of 1 - 2 sum_c w_c sum(p_c t_c) / sum_c w_c sum(p_c + t_c), w_c = 1 / max(n_c^2, eps)."""
    probs = torch.softmax(logits.float(), dim=1).flatten(start_dim=2)                   # (N, C, P)
    onehot = F.one_hot(class_map.long(), logits.shape[1]).flatten(start_dim=1, end_dim=-2)  # (N, P, C)
    onehot = onehot.transpose(1, 2).float()                                            # (N, C, P)
    weights = 1.0 / onehot.sum(dim=2).pow(2).clamp(min=epsilon)                        # (N, C)
    overlap = (weights * (probs * onehot).sum(dim=2)).sum(dim=1)
    total = (weights * (probs + onehot).sum(dim=2)).sum(dim=1)
    dice = 2.0 * overlap / total
    return (1.0 - dice.clamp(min=epsilon)).mean()


def surface_loss(logits: torch.Tensor, distance_maps: torch.Tensor) -> torch.Tensor:
    """mean of softmax(logits) * distance_maps over pixels, classes and images; both (N,C,H,W)."""
    if distance_maps.shape != logits.shape:
        raise ValueError(f"surface_loss: distance maps {tuple(distance_maps.shape)} do not match the "
                         f"logits {tuple(logits.shape)}")
    return (torch.softmax(logits.float(), dim=1) * distance_maps.float()).mean()


def dice_weight(epoch: int, epochs: int) -> float:
    """alpha of a 1-based epoch: the Dice term's weight; the surface term gets 1 - alpha."""
    if epochs < 1 or not 1 <= epoch <= epochs:
        raise ValueError(f"dice_weight: epoch {epoch} of {epochs}, expected 1 <= epoch <= epochs")
    if epoch > SCHEDULE_EPOCHS:
        return 1.0
    return 1.0 - epoch / min(SCHEDULE_EPOCHS, epochs)


def ritnet_loss(logits: torch.Tensor, class_map: torch.Tensor, boundary_weights: torch.Tensor,
                distance_maps: torch.Tensor, epoch: int, epochs: int) -> torch.Tensor:
    """The scheduled total for a 1-based `epoch` of `epochs` (see the module docstring)."""
    alpha = dice_weight(epoch, epochs)
    total = boundary_weighted_cross_entropy(logits, class_map, boundary_weights)
    if alpha > 0:
        total = total + alpha * generalised_dice_loss(logits, class_map)
    if alpha < 1:
        total = total + (1.0 - alpha) * surface_loss(logits, distance_maps)
    return total
