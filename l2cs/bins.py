"""Angle bins of L2CS-Net: angle -> bin index (classification target) and
bin logits -> continuous angle (softmax expectation over bin positions).

Bin i covers [start + i * width, start + (i + 1) * width), the same
intervals as the reference's `np.digitize(angle, range(start, stop, width)) - 1`.

Decode position: the reference multiplies the expected bin *index* by the
width and adds the start, i.e. it decodes at each bin's lower edge. A
network that puts all its mass on the right bin is then biased by
-width / 2 (-2 deg with 4 deg bins), and the cross-entropy term (which wants
that one-hot answer) and the MSE term (which wants the bias gone) pull
against each other. We decode at bin centres by default: the one-hot answer
is then unbiased and the two loss terms agree. Checkpoints of the original
repository were trained against the lower-edge decode, so loading one sets
`anchor="edge"` (see `l2cs.checkpoint`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from l2cs.config import BIN_ANCHORS, L2CSConfig


@dataclass(frozen=True)
class BinSpec:
    """`count` bins of `width` degrees from `start`; `anchor` is the decode position."""

    count: int
    width: float
    start: float
    anchor: str = "centre"

    def __post_init__(self) -> None:
        if self.anchor not in BIN_ANCHORS:
            raise ValueError(f"bin anchor {self.anchor!r}, expected one of {BIN_ANCHORS}")

    @classmethod
    def from_config(cls, config: L2CSConfig) -> "BinSpec":
        return cls(config.bin_count, config.bin_width, config.bin_start, config.bin_anchor)

    @property
    def stop(self) -> float:
        return self.start + self.count * self.width

    def positions(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Degrees that each bin stands for in the decode: centres or lower edges."""
        offset = 0.5 if self.anchor == "centre" else 0.0
        index = torch.arange(self.count, dtype=torch.float32, device=device)
        return self.start + (index + offset) * self.width

    def to_bin(self, angles_deg: torch.Tensor) -> torch.Tensor:
        """Bin index of each angle (int64); angles outside [start, stop) go to the end bins."""
        index = torch.floor((angles_deg.float() - self.start) / self.width).long()
        return index.clamp_(0, self.count - 1)

    def out_of_range(self, angles_deg: torch.Tensor) -> torch.Tensor:
        """Boolean mask of angles that `to_bin` had to clamp."""
        return (angles_deg < self.start) | (angles_deg >= self.stop)

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Continuous angles (deg, float32) from (N, count) logits: sum_i softmax_i * position_i."""
        if logits.shape[-1] != self.count:
            raise ValueError(f"logits have {logits.shape[-1]} bins, expected {self.count}")
        probs = torch.softmax(logits.float(), dim=-1)
        return probs @ self.positions(logits.device)

    def decode_pair(self, outputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """(N, 2) [pitch, yaw] deg from the model's (pitch logits, yaw logits)."""
        pitch_logits, yaw_logits = outputs
        return torch.stack([self.decode(pitch_logits), self.decode(yaw_logits)], dim=1)
