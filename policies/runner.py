"""The policy runner: load an exported policy file and run it with numpy (no torch, no pickle).

File format ``fingergym-policy`` v1: one `safetensors <https://github.com/huggingface/
safetensors>`_ file. Tensors are the actor's layers (``actor.<i>.weight`` (out, in) float32,
``actor.<i>.bias`` (out,) float32); the header metadata key ``fingergym_policy`` holds a JSON
spec: format/version, obs/action dims, obs names, the layer list and activation, the
observation normalization (mean/var/clip/epsilon, as VecNormalize applies it), the scenario's
action scaling (information only: the station applies it) and training provenance.

Forward pass, obs (10,) -> action (2,)::

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

from fingergym.task import ACTION_DIM, OBS_DIM, OBS_NAMES

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


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _check_spec(path: Path, spec: Any, tensors: dict[str, np.ndarray]) -> list:
    """Validate the spec against the task; returns [(W, b, activation or None), ...]."""
    if not isinstance(spec, dict):
        raise _fail(path, "spec is not a JSON object")
    if spec.get("format") != FORMAT:
        raise _fail(path, f"format is {spec.get('format')!r}, expected {FORMAT!r}")
    if spec.get("version") != VERSION:
        raise _fail(path, f"format version {spec.get('version')!r} is not supported "
                          f"(this runner reads version {VERSION})")
    if spec.get("obs_dim") != OBS_DIM or tuple(spec.get("obs_names", ())) != OBS_NAMES:
        raise _fail(path, f"observation size {spec.get('obs_dim')} / names "
                          f"{spec.get('obs_names')} do not match this task ({OBS_DIM}: "
                          f"{list(OBS_NAMES)})")
    if spec.get("action_dim") != ACTION_DIM:
        raise _fail(path, f"action size {spec.get('action_dim')}, this task has {ACTION_DIM}")
    layers_spec = spec.get("layers")
    if not isinstance(layers_spec, list) or not layers_spec:
        raise _fail(path, "no layer list")
    layers, width = [], OBS_DIM
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
    if width != ACTION_DIM or layers[-1][2] is not None:
        raise _fail(path, f"the last layer must be linear with {ACTION_DIM} outputs")
    return layers


def _check_norm(path: Path, norm: Any) -> dict | None:
    if not isinstance(norm, dict) or not norm.get("enabled"):
        return None
    try:
        mean = np.asarray(norm["mean"], dtype=np.float64)
        var = np.asarray(norm["var"], dtype=np.float64)
        clip, eps = float(norm["clip"]), float(norm["epsilon"])
    except (KeyError, TypeError, ValueError) as e:
        raise _fail(path, f"normalization: {e}") from e
    if mean.shape != (OBS_DIM,) or var.shape != (OBS_DIM,):
        raise _fail(path, f"normalization mean/var have shapes {mean.shape}/{var.shape}, "
                          f"expected ({OBS_DIM},)")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)
            and math.isfinite(clip) and clip > 0 and eps >= 0):
        raise _fail(path, "normalization has non-finite or negative values")
    return {"mean": mean, "scale": np.sqrt(var + eps), "clip": clip}


class Policy:
    """An exported policy: ``policy(obs (10,)) -> action (2,) float32 in [-1, 1]``.

    Also accepts a batch ``(N, 10) -> (N, 2)``. Attributes: ``path``, ``sha256`` (hex of the
    file), ``spec`` (the JSON spec).
    """

    def __init__(self, path: Path, sha256: str, spec: dict, layers: list, norm: dict | None):
        self.path = path
        self.sha256 = sha256
        self.spec = spec
        self._layers = layers
        self._norm = norm

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
        try:
            layers = _check_spec(path, spec, tensors)
            norm = _check_norm(path, spec.get("normalization"))
        except PolicyFormatError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as e:
            raise _fail(path, f"malformed spec ({type(e).__name__}: {_short(e)})") from None
        return cls(path, hashlib.sha256(blob).hexdigest(), spec, layers, norm)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """VecNormalize's observation transform (float64 in, float32 out)."""
        x = np.asarray(obs, dtype=np.float64)
        if self._norm is not None:
            n = self._norm
            x = np.clip((x - n["mean"]) / n["scale"], -n["clip"], n["clip"])
        return x.astype(np.float32)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.shape[-1:] != (OBS_DIM,) or obs.ndim > 2:
            raise ValueError(f"observation must have shape ({OBS_DIM},) or (N, {OBS_DIM}), "
                             f"got {obs.shape}")
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


def shipped_policy_path() -> Path:
    """Where the shipped policy lives inside the package (``policies/shipped/``)."""
    return Path(str(resources.files("fingergym.policies").joinpath(SHIPPED)))


def load_shipped_policy() -> Policy:
    """The policy shipped with the package; ``FileNotFoundError`` if there is none."""
    path = shipped_policy_path()
    if not path.exists():
        raise FileNotFoundError(f"no shipped policy at {path}")
    return Policy.load(path)
