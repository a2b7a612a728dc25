"""The policy runner: load an exported policy file and run it with numpy (no torch, no pickle).

File format ``fingergym-policy`` v1: one `safetensors <https://github.com/huggingface/
safetensors>`_ file. Tensors are the actor's layers (``actor.<i>.weight`` (out, in) float32,
``actor.<i>.bias`` (out,) float32); the header metadata key ``fingergym_policy`` holds a JSON
spec: format/version, obs/action dims, the observation and action layouts (``obs_names`` and
``observation_layout``/``action_layout`` as :class:`~fingergym.layout.Layout` dicts; files
written before the layouts have ``obs_names`` only), the task and robot, the layer list and
activation, the observation normalization (mean/var/clip/epsilon, as VecNormalize applies it),
the action scaling (information only: the station applies it) and training provenance.

Forward pass, obs (n,) -> action (m,)::

    x = clip((obs - mean) / sqrt(var + epsilon), -clip, clip)     (float64, then float32)
    x = act(W_i x + b_i) for the hidden layers; a = clip(W_out x + b_out, -1, 1)

which equals stable-baselines3's ``model.predict(vecnormalize.normalize_obs(obs),
deterministic=True)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from fingergym.layout import Layout, LayoutError

FORMAT = "fingergym-policy"
VERSION = 1
METADATA_KEY = "fingergym_policy"
SHIPPED = "shipped/policy.safetensors"
ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}
MAX_HEADER = 16 * 1024 * 1024  # bytes; a real header is a few kB


class PolicyFormatError(ValueError):
    """The file is not a valid, loadable fingergym policy; the message says why."""


def _fail(path: Path, why: str) -> PolicyFormatError:
    return PolicyFormatError(f"{path}: not a valid {FORMAT} file: {why}")


MAX_FILE = 64 * 1024 * 1024  # bytes; the shipped policy is tens of kB


def _looks_like_safetensors(blob: bytes) -> bool:
    """The safetensors layout: u64 little-endian header length n that fits the file, then n
    bytes of header (parsed next). A pickle's first 8 bytes read as such a length are far
    larger than any file."""
    if len(blob) < 10:
        return False
    (n,) = struct.unpack("<Q", blob[:8])
    return 2 <= n <= MAX_HEADER and 8 + n <= len(blob)


def _what_else(blob: bytes) -> str | None:
    """What a non-safetensors file looks like (checked only after the safetensors layout failed:
    a header length whose low byte is 0x80 is not a pickle)."""
    if len(blob) >= 2 and blob[0] == 0x80 and 2 <= blob[1] <= 5:
        return "a pickle"
    if blob[:4] == b"PK\x03\x04":
        return "a zip archive (torch/SB3 file?)"
    if blob[:2] == b"\x1f\x8b":
        return "a gzip archive"
    return None


def _parse(path: Path, blob: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Validate the container and return (spec, tensors); never unpickles or executes."""
    if not _looks_like_safetensors(blob):
        kind = _what_else(blob)
        if kind is not None:
            raise _fail(path, f"it is {kind}; refusing to load it (export a run with "
                              f"`fingergym export RUN_DIR -o policy.safetensors`)")
        if len(blob) < 10:
            raise _fail(path, f"truncated ({len(blob)} bytes)")
        (n,) = struct.unpack("<Q", blob[:8])
        raise _fail(path, f"truncated or not safetensors (header of {n} bytes, file of "
                          f"{len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    try:
        header = json.loads(blob[8:8 + n])
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _fail(path, f"header is not JSON ({_short(e)})") from None
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or METADATA_KEY not in meta:
        raise _fail(path, f"no '{METADATA_KEY}' metadata (a safetensors file, but not a policy)")
    try:
        spec = json.loads(meta[METADATA_KEY])
    except (TypeError, ValueError, RecursionError) as e:
        raise _fail(path, f"'{METADATA_KEY}' metadata is not JSON ({_short(e)})") from None
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        tensors = load(blob)
    except (SafetensorError, ValueError, KeyError) as e:
        raise _fail(path, f"tensor data invalid or truncated ({_short(e)})") from None
    return spec, tensors


def _layouts(path: Path, spec: dict) -> tuple[Layout, Layout | None]:
    """(observation layout, action layout or None for files from before the layouts)."""
    try:
        obs = Layout.from_dict(spec.get("observation_layout") or spec.get("obs_names") or [])
        act = spec.get("action_layout")
        return obs, (None if act is None else Layout.from_dict(act))
    except LayoutError as e:
        raise _fail(path, f"layout: {e}") from e


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _check_spec(path: Path, spec: Any, tensors: dict[str, np.ndarray]) -> list:
    """Validate the spec's structure; returns [(W, b, activation or None), ...]."""
    if not isinstance(spec, dict):
        raise _fail(path, "spec is not a JSON object")
    if spec.get("format") != FORMAT:
        raise _fail(path, f"format is {spec.get('format')!r}, expected {FORMAT!r}")
    if spec.get("version") != VERSION:
        raise _fail(path, f"format version {spec.get('version')!r} is not supported "
                          f"(this runner reads version {VERSION})")
    obs_layout, act_layout = _layouts(path, spec)
    obs_dim, action_dim = spec.get("obs_dim"), spec.get("action_dim")
    if obs_dim != obs_layout.size or not obs_dim:
        raise _fail(path, f"observation size {obs_dim} does not match its {obs_layout.size} "
                          f"observation names")
    if not isinstance(action_dim, int) or action_dim < 1 or (
            act_layout is not None and act_layout.size != action_dim):
        raise _fail(path, f"action size {action_dim} does not match its action layout")
    layers_spec = spec.get("layers")
    if not isinstance(layers_spec, list) or not layers_spec:
        raise _fail(path, "no layer list")
    layers, width = [], obs_dim
    for i, layer in enumerate(layers_spec):
        try:
            w = tensors[layer["weight"]]
            b = tensors[layer["bias"]]
            act = layer.get("activation")
        except (KeyError, TypeError) as e:
            raise _fail(path, f"layer {i}: missing tensor or key {e}") from e
        if act is not None and act not in ACTIVATIONS:
            raise _fail(path, f"layer {i}: unknown activation {act!r}")
        if w.ndim != 2 or w.shape[1] != width or b.shape != (w.shape[0],):
            raise _fail(path, f"layer {i}: weight {w.shape} / bias {b.shape} do not take a "
                              f"{width}-vector")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise _fail(path, f"layer {i}: non-finite weights")
        layers.append((w.astype(np.float32), b.astype(np.float32), act))
        width = w.shape[0]
    if width != action_dim or layers[-1][2] not in (None, "tanh"):
        raise _fail(path, f"the last layer must be linear (or tanh: a bounded mean) with "
                          f"{action_dim} outputs")
    return layers


def _check_norm(path: Path, norm: Any, obs_dim: int) -> dict | None:
    if not isinstance(norm, dict) or not norm.get("enabled"):
        return None
    try:
        mean = np.asarray(norm["mean"], dtype=np.float64)
        var = np.asarray(norm["var"], dtype=np.float64)
        clip, eps = float(norm["clip"]), float(norm["epsilon"])
    except (KeyError, TypeError, ValueError) as e:
        raise _fail(path, f"normalization: {e}") from e
    if mean.shape != (obs_dim,) or var.shape != (obs_dim,):
        raise _fail(path, f"normalization mean/var have shapes {mean.shape}/{var.shape}, "
                          f"expected ({obs_dim},)")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)
            and math.isfinite(clip) and clip > 0 and eps >= 0):
        raise _fail(path, "normalization has non-finite or negative values")
    return {"mean": mean, "scale": np.sqrt(var + eps), "clip": clip}


class Policy:
    """An exported policy: ``policy(obs (n,)) -> action (m,) float32 in [-1, 1]``.

    Also accepts a batch ``(N, n) -> (N, m)``. Attributes: ``path``, ``sha256`` (hex of the
    file), ``spec`` (the JSON spec), ``observation_layout``, ``action_layout`` (None in files
    from before the layouts).
    """

    def __init__(self, path: Path, sha256: str, spec: dict, layers: list, norm: dict | None):
        self.path = path
        self.sha256 = sha256
        self.spec = spec
        self._layers = layers
        self._norm = norm
        self.observation_layout, self.action_layout = _layouts(path, spec)
        self.obs_dim = self.observation_layout.size

    def check_layout(self, observation: Layout, action: Layout | None = None) -> None:
        """Raise :class:`PolicyFormatError` (one line) unless this policy reads observations
        with these element names (and, when both are known, writes this action layout)."""
        if not self.observation_layout.same_names(observation):
            raise PolicyFormatError(
                f"{self.path}: trained on observations {list(self.observation_layout.names)}, "
                f"this env gives {list(observation.names)} (another task or robot?)")
        if action is not None and self.action_layout is not None and \
                not self.action_layout.same_names(action):
            raise PolicyFormatError(f"{self.path}: writes actions "
                                    f"{list(self.action_layout.names)}, this robot takes "
                                    f"{list(action.names)}")

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Load and validate ``path``; raises :class:`PolicyFormatError` (nothing executed)."""
        from fingergym.files import FileCheckError, read_regular

        path = Path(path)
        try:
            blob = read_regular(path, "policy file", MAX_FILE)
        except FileNotFoundError:
            raise
        except FileCheckError as e:
            raise PolicyFormatError(str(e)) from None
        except OSError as e:
            raise PolicyFormatError(f"{path}: cannot read policy file: {e.strerror or e}") from e
        spec, tensors = _parse(path, blob)
        return cls.from_parts(path, spec, tensors, hashlib.sha256(blob).hexdigest())

    @classmethod
    def from_parts(cls, path: Path, spec: Any, tensors: dict[str, np.ndarray],
                   sha256: str = "") -> Policy:
        """A policy from a parsed spec and its tensors, validated as :meth:`load` does
        (``path`` names the source in errors; :func:`fingergym.policies.export.live_policy`
        builds one in memory from a model in training)."""
        try:
            layers = _check_spec(path, spec, tensors)
            norm = _check_norm(path, spec.get("normalization"), spec["obs_dim"])
        except PolicyFormatError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as e:
            raise _fail(path, f"malformed spec ({type(e).__name__}: {_short(e)})") from None
        return cls(path, sha256, spec, layers, norm)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """VecNormalize's observation transform (float64 in, float32 out)."""
        x = np.asarray(obs, dtype=np.float64)
        if self._norm is not None:
            n = self._norm
            x = np.clip((x - n["mean"]) / n["scale"], -n["clip"], n["clip"])
        return x.astype(np.float32)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        n = self.obs_dim
        if obs.shape[-1:] != (n,) or obs.ndim > 2:
            raise ValueError(f"observation must have shape ({n},) or (N, {n}), got {obs.shape}")
        if not np.all(np.isfinite(obs)):
            raise ValueError(f"observation must be finite, got {obs.tolist()}")
        x = self.normalize(obs)
        for w, b, act in self._layers:
            x = x @ w.T + b
            if act is not None:
                x = ACTIVATIONS[act](x)
        return np.clip(x, -1.0, 1.0).astype(np.float32)

    def __repr__(self) -> str:
        return f"Policy({str(self.path)!r}, sha256={self.sha256[:12]})"


def shipped_policy_path(task: str | None = None) -> Path:
    """Where a shipped policy lives inside the package: ``policies/shipped/<task>/`` when the
    task has its own, else ``policies/shipped/`` (the default task's)."""
    shipped = resources.files("fingergym.policies").joinpath(SHIPPED)
    if task:
        own = resources.files("fingergym.policies").joinpath(
            Path(SHIPPED).parent / task / Path(SHIPPED).name)
        if own.is_file():
            return Path(str(own))
    return Path(str(shipped))


def load_shipped_policy(task: str | None = None) -> Policy:
    """The policy shipped for ``task`` (see :func:`shipped_policy_path`);
    ``FileNotFoundError`` if there is none."""
    path = shipped_policy_path(task)
    if not path.exists():
        raise FileNotFoundError(f"no shipped policy at {path}")
    return Policy.load(path)
