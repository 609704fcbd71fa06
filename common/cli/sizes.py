"""The one parser of image sizes given on a command line (`--input-size`, `--size`)."""
from __future__ import annotations

import click


def parse_image_size(text: str, example: str, param_hint: str | None = None, *,
                     side_alone: bool = False) -> tuple[int, int]:
    """(width, height) from ``WIDTHxHEIGHT`` text, or from a bare ``N`` as NxN when `side_alone`;
    click.BadParameter naming ``example`` and what was given otherwise."""
    form = "WIDTHxHEIGHT" + (" (or N for NxN)" if side_alone else "")
    parts = text.lower().split("x")
    try:
        if side_alone and len(parts) == 1:
            side = int(parts[0])
            return side, side
        width, height = (int(part) for part in parts)
    except ValueError:
        raise click.BadParameter(f"expected {form} such as {example}, got {text!r}", param_hint=param_hint) from None
    return width, height
