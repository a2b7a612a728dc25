"""Named vector layouts: every vector that crosses a module boundary is read by name.

A :class:`Layout` is an ordered tuple of element names plus optional named groups (e.g.
``box_q = (box_x, box_z, box_theta)``). It maps names to indices and groups to slices (or index
arrays when a group is not contiguous), and round-trips through JSON, so bags and exported
policies carry it and a reader can check it instead of trusting positions.

>>> obs = Layout(("box_x", "box_z", "finger_x"), groups={"box": ("box_x", "box_z")})
>>> obs.index("finger_x"), obs["box"]
(2, slice(0, 2, None))
>>> v = np.zeros(3); obs.set(v, "box", [1.0, 2.0]); float(obs.get(v, "box_z"))
2.0
>>> Layout.from_json(obs.to_json()) == obs
True
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

Index = int | slice | np.ndarray


class LayoutError(ValueError):
    """A layout is malformed, or a vector/name does not fit it."""


class Layout:
    """Ordered element names (``size`` of them) and named groups of elements.

    Args:
        names: the element names, in vector order (unique).
        groups: optional ``group name -> element names``; a group name must not also be an
            element name. Groups keep their own order (which may differ from the vector's).
    """

    __slots__ = ("names", "groups", "_index", "_group_index")

    def __init__(self, names: Iterable[str], groups: Mapping[str, Sequence[str]] | None = None):
        self.names: tuple[str, ...] = tuple(str(n) for n in names)
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise LayoutError(f"duplicate element names {dup}")
        self._index = {n: i for i, n in enumerate(self.names)}
        self.groups: dict[str, tuple[str, ...]] = {}
        self._group_index: dict[str, Index] = {}
        for g, members in (groups or {}).items():
            if g in self._index:
                raise LayoutError(f"group {g!r} has the name of an element")
            members = tuple(members)
            missing = [m for m in members if m not in self._index]
            if missing:
                raise LayoutError(f"group {g!r}: unknown elements {missing} (known: "
                                  f"{list(self.names)})")
            idx = [self._index[m] for m in members]
            self.groups[g] = members
            if idx and idx == list(range(idx[0], idx[0] + len(idx))):
                self._group_index[g] = slice(idx[0], idx[0] + len(idx))
            else:
                self._group_index[g] = np.array(idx, dtype=int)

    # ------------------------------------------------------------------ lookup
    @property
    def size(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index or name in self._group_index

    def index(self, name: str) -> int:
        """Position of element ``name``."""
        try:
            return self._index[name]
        except KeyError:
            raise LayoutError(f"no element {name!r} in layout {list(self.names)}") from None

    def __getitem__(self, key: str) -> Index:
        """An element's index (int) or a group's slice / index array."""
        if key in self._index:
            return self._index[key]
        try:
            return self._group_index[key]
        except KeyError:
            raise LayoutError(f"no element or group {key!r} in layout {list(self.names)} "
                              f"(groups: {sorted(self.groups)})") from None

    def indices(self, names: Iterable[str]) -> np.ndarray:
        """Positions of several elements (or groups, expanded), as an int array."""
        out: list[int] = []
        for n in names:
            idx = self[n]
            out.extend(np.arange(self.size)[idx].ravel().tolist())
        return np.array(out, dtype=int)

    def get(self, vector: np.ndarray, key: str) -> Any:
        """``vector[..., key]`` by name (works on one vector (n,) or a batch (..., n))."""
        v = np.asarray(vector)
        self.check(v)
        return v[..., self[key]]

    def set(self, vector: np.ndarray, key: str, value: Any) -> None:
        """Write ``value`` into ``vector`` at element/group ``key`` (in place)."""
        self.check(vector)
        vector[..., self[key]] = value

    def check(self, vector: Any, what: str = "vector") -> np.ndarray:
        """``vector`` as an array whose last axis has this layout's size, else LayoutError."""
        v = np.asarray(vector)
        if v.ndim == 0 or v.shape[-1] != self.size:
            raise LayoutError(f"{what} has shape {v.shape}; its layout has {self.size} "
                              f"elements {list(self.names)}")
        return v

    def as_dict(self, vector: np.ndarray) -> dict[str, float]:
        """``{name: value}`` of one vector (for logs and ``info``)."""
        v = self.check(vector)
        return {n: float(v[i]) for i, n in enumerate(self.names)}

    def vector(self, values: Mapping[str, float], default: float | None = None) -> np.ndarray:
        """A vector from ``{name: value}``; missing names take ``default`` (None: an error)."""
        missing = [n for n in self.names if n not in values]
        if missing and default is None:
            raise LayoutError(f"missing values for {missing}")
        return np.array([float(values.get(n, default)) for n in self.names])

    def concat(self, other: Layout) -> Layout:
        """This layout followed by ``other`` (names must not collide)."""
        return Layout(self.names + other.names, {**self.groups, **other.groups})

    # ------------------------------------------------------------------ comparison, JSON
    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Layout) and self.names == other.names
                and self.groups == other.groups)

    def __hash__(self) -> int:
        return hash((self.names, tuple(sorted(self.groups.items()))))

    def same_names(self, other: Layout | Sequence[str]) -> bool:
        """Same elements in the same order (groups ignored): the vectors are interchangeable."""
        names = other.names if isinstance(other, Layout) else tuple(other)
        return self.names == tuple(names)

    def __repr__(self) -> str:
        g = f", groups={self.groups}" if self.groups else ""
        return f"Layout({list(self.names)}{g})"

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "groups": {k: list(v) for k, v in self.groups.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[str]) -> Layout:
        """From :meth:`to_dict`'s output, or a plain list of names (older bags and policies)."""
        if isinstance(data, Mapping):
            if "names" not in data:
                raise LayoutError(f"a layout needs 'names', got keys {sorted(data)}")
            return cls(data["names"], data.get("groups") or {})
        if isinstance(data, str) or not isinstance(data, Sequence):
            raise LayoutError(f"a layout is a mapping or a list of names, got {data!r}")
        return cls(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Layout:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise LayoutError(f"layout is not JSON: {e}") from e
