"""Write an episode's frames as a GIF or an MP4 (imageio; MP4 through imageio-ffmpeg's binary)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

SUFFIXES = (".gif", ".mp4")


def check_video_path(path: Path) -> None:
    """Raise ``ValueError`` (one line) before any work if ``path`` cannot be written."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported video format {suffix or '(none)'!r}; "
                         f"use one of {', '.join(SUFFIXES)}")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg

            imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError) as e:
            raise ValueError(f"{path}: no ffmpeg for MP4 ({e}); pip install 'imageio[ffmpeg]' "
                             f"or write a .gif") from e
    if not Path(path).parent.exists():
        raise ValueError(f"{path}: directory {Path(path).parent} does not exist")


def save_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write ``frames`` ((H, W, 3|4) uint8 each) at ``fps`` frames per second; loops if a GIF."""
    import imageio.v3 as iio

    check_video_path(path)
    rgb = np.stack([np.asarray(f)[..., :3] for f in frames])
    if Path(path).suffix.lower() == ".gif":
        # Pillow's GIF writer takes the frame time in milliseconds.
        iio.imwrite(path, rgb, extension=".gif", duration=1000.0 / fps, loop=0)
    else:
        iio.imwrite(path, rgb, extension=".mp4", plugin="FFMPEG", fps=fps)
    return Path(path)
