"""The memory format a model trains in: channels_last, except where the CPU's oneDNN is known to fail.

Found on a 2-core AMD EPYC (Zen 3, AVX2) with Debian's torch 1.13.1 (oneDNN 2.6.3): the weight gradient of a
1x1, stride-2 convolution in channels_last with 2 to 6 input channels (a ResNet downsampling shortcut at a
width under 8) corrupts the heap: an abort on one thread, run-to-run different losses on two
(docs/dfer.md, "Known fault"). Every preset's width is a multiple of 8; a user's `--base-width 4` is not.
Such a model trains in the contiguous format instead, slower but sound; the validation's forward pass
is not affected. Other ISAs (a Zen 4 with AVX-512 ran it clean) may be safe, but the CPU path cannot tell
in advance, so the rule applies to every CPU.
"""
from __future__ import annotations

import torch
from torch import nn

FAULTY_INPUT_CHANNELS = range(2, 7)  # where the 1x1 stride-2 weight gradient failed (1, 7 and 8 ran clean)


def channels_last_fault(model: nn.Module, device: torch.device) -> str:
    """Why `model` must not train in channels_last on `device` (the first faulty convolution), "" when it may."""
    if device.type != "cpu":
        return ""
    for name, module in model.named_modules():
        if (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.stride == (2, 2)
                and module.in_channels in FAULTY_INPUT_CHANNELS):
            return (f"{name}: a 1x1 stride-2 convolution of {module.in_channels} input channels, whose channels_last "
                    "weight gradient corrupts the heap in oneDNN 2.x on some CPUs (docs/dfer.md, 'Known fault')")
    return ""


def keep_inputs_contiguous(model: nn.Module) -> None:
    """Make every tensor `model` receives contiguous, so its convolutions run in the contiguous format (a
    channels_last input would make them channels_last whatever the weights' layout; prepared batches are)."""
    def contiguous(_module: nn.Module, inputs: tuple) -> tuple:
        return tuple(x.contiguous() if isinstance(x, torch.Tensor) else x for x in inputs)

    model.register_forward_pre_hook(contiguous)


FALLBACK = "contiguous, not channels_last: "  # how the name of a format chosen by the fault rule begins


def training_memory_format(model: nn.Module, device: torch.device, wanted_channels_last: bool) -> tuple[nn.Module, str]:
    """`model` in the format it trains in on `device` and that format's name for config.json: channels_last when
    wanted and sound, else contiguous (with why, when the fault rule chose it)."""
    if not wanted_channels_last:
        return model, "contiguous"
    fault = channels_last_fault(model, device)
    if fault:
        keep_inputs_contiguous(model)
        return model, FALLBACK + fault
    return model.to(memory_format=torch.channels_last), "channels_last"
