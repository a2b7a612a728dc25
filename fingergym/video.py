"""Write an episode's frames as a GIF or an MP4 (imageio; MP4 through imageio-ffmpeg's binary).

Check the path first with :func:`fingergym.files.check_output_file` and
:func:`fingergym.files.video_suffixes`, before the episode that produces the frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def save_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write ``frames`` ((H, W, 3|4) uint8 each) at ``fps`` frames per second, in real time if
    ``fps`` is the episode's step rate; a GIF loops. Creates the directory."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([np.asarray(f)[..., :3] for f in frames])
    if path.suffix.lower() == ".gif":
        # Pillow's GIF writer takes the frame time in milliseconds.
        iio.imwrite(path, rgb, extension=".gif", duration=1000.0 / fps, loop=0)
    else:
        iio.imwrite(path, rgb, extension=path.suffix.lower(), plugin="FFMPEG", fps=fps)
    return path
