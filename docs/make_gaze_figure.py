"""Draw docs/gaze_geometry.png: camera, screen, eye, target and the angle convention.

Run: .venv/bin/python docs/make_gaze_figure.py  (writes next to this file)
Numbers are illustrative: a laptop-sized screen with the camera above its
top edge (direction T), the eye 450 mm away.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCREEN_H, SCREEN_W, BEZEL = 194.0, 344.0, 8.0
EYE_Y, EYE_Z, TARGET_Y = 60.0, 450.0, 150.0  # screen frame, mm (y down from the top edge)
EYE_X, TARGET_X = 200.0, 90.0


def _arrow(ax, start, end, color, label=None) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": color, "lw": 2})
    if label:
        ax.text(end[0], end[1], label, color=color, fontsize=9, ha="left", va="bottom")


def side_view(ax) -> None:
    """y-z plane: horizontal = z (towards the observer), vertical = up (-y)."""
    ax.plot([0, 0], [0, -SCREEN_H], color="k", lw=4, label="screen (z = 0)")
    ax.plot(0, BEZEL, "s", color="tab:blue", ms=10, label="camera (direction T)")
    _arrow(ax, (0, BEZEL), (80, BEZEL), "tab:blue", "z (camera forward)")
    _arrow(ax, (0, BEZEL), (0, BEZEL - 60), "tab:blue", "y (down)")
    ax.plot(EYE_Z, -EYE_Y, "o", color="tab:green", ms=10, label="eye (from iris centres + distance.cam)")
    ax.plot(0, -TARGET_Y, "*", color="tab:red", ms=14, label="target (pose.point via profile)")
    _arrow(ax, (EYE_Z, -EYE_Y), (0, -TARGET_Y), "tab:red", None)
    ax.plot([EYE_Z, 0], [-EYE_Y, -EYE_Y], ":", color="grey")
    pitch = math.degrees(math.atan2(-(TARGET_Y - EYE_Y), EYE_Z))
    ax.text(EYE_Z * 0.55, -EYE_Y - 45, f"pitch = asin(-g_y) = {pitch:.1f} deg\n(negative: looking down)", fontsize=9)
    ax.set_title("side view (looking along x)")
    ax.set_xlabel("z from the screen towards the observer (mm)")
    ax.set_ylabel("up (mm)")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)


def top_view(ax) -> None:
    """x-z plane seen from above: horizontal = camera x (mirrored frames: the observer's right)."""
    cam_x = SCREEN_W / 2
    ax.plot([0, SCREEN_W], [0, 0], color="k", lw=4)
    ax.plot(cam_x, 0, "s", color="tab:blue", ms=10)
    _arrow(ax, (cam_x, 0), (cam_x + 70, 0), "tab:blue", "x")
    _arrow(ax, (cam_x, 0), (cam_x, 70), "tab:blue", "z")
    ax.plot(EYE_X, EYE_Z, "o", color="tab:green", ms=10)
    ax.plot(TARGET_X, 0, "*", color="tab:red", ms=14)
    _arrow(ax, (EYE_X, EYE_Z), (TARGET_X, 0), "tab:red", None)
    ax.plot([EYE_X, EYE_X], [EYE_Z, 0], ":", color="grey")
    yaw = math.degrees(math.atan2(-(TARGET_X - EYE_X), EYE_Z))
    ax.text(EYE_X + 10, EYE_Z * 0.5, f"yaw = atan2(-g_x, -g_z)\n= {yaw:.1f} deg (towards -x)", fontsize=9)
    ax.text(cam_x - 60, EYE_Z + 40, "g = unit(target - eye), camera frame\nlooking into the camera: (0, 0)",
            fontsize=9)
    ax.set_title("top view (looking down y)")
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("z (mm)")
    ax.set_ylim(-40, EYE_Z + 110)
    ax.set_aspect("equal")


def main() -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5))
    side_view(left)
    top_view(right)
    fig.suptitle("Gaze convention: OpenCV camera frame (x right, y down, z forward), MPIIGaze pitch/yaw")
    fig.tight_layout()
    out = Path(__file__).with_name("gaze_geometry.png")
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
