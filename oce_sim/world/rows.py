"""Rows of a batch: each territory's arrays live as rows of one ``(N, ...)`` array per field.

A batch's compiled phases loop over territories inside one call, so they need every territory's copy of a field
in one array.  :func:`bind_rows` stacks the territories' arrays into such a parent and rebinds each territory's
attribute to its row (a view): code that reads or writes a territory in place (``state.goodwill[h] += ...``)
and the compiled phases see the same numbers.  A territory's object keeps working alone.

An assignment that would replace a bound array (``state.account_access = np.where(...)``) copies into the row
instead (:class:`RowBound`), so no territory silently drifts away from its batch; an array of another shape is an
error.  A pickle or deep copy of a territory holds copies of its rows (NumPy copies a view's data), which the next
batch binds again.

May import: numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BOUND = "_rows_bound"  # the instance attribute naming an object's bound fields


class RowBound:
    """Mixin: assigning to a field bound to a batch's rows copies into the row (see the module docstring)."""

    def __setattr__(self, name: str, value: Any) -> None:
        bound = self.__dict__.get(BOUND)
        if bound and name in bound:
            row = self.__dict__[name]
            value = np.asarray(value)
            if value.shape != row.shape:
                raise ValueError(f"{type(self).__name__}.{name} is a row of its batch, shaped {row.shape}; "
                                 f"cannot replace it by an array shaped {value.shape}")
            np.copyto(row, value, casting="same_kind")
            return
        object.__setattr__(self, name, value)


def bind_rows(objects: Sequence[Any], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Stack ``getattr(obj, name)`` of every object into one parent array per name and rebind each object's
    attribute to its row; returns the parents.  Every object must hold an array of one shape and dtype per name."""
    parents: dict[str, np.ndarray] = {}
    if len(objects) == 1:  # a batch of one: its arrays are already its rows (no copy)
        obj = objects[0]
        for name in names:
            parents[name] = getattr(obj, name)[np.newaxis]
        object.__setattr__(obj, BOUND, frozenset(set(obj.__dict__.get(BOUND, ())) | set(names)))
        return parents
    for name in names:
        rows = [getattr(obj, name) for obj in objects]
        first = rows[0]
        for row in rows[1:]:
            if row.shape != first.shape or row.dtype != first.dtype:
                raise ValueError(f"territories of one batch differ in {name}: {first.shape} {first.dtype} vs "
                                 f"{row.shape} {row.dtype}")
        parent = np.stack(rows)
        for t, obj in enumerate(objects):
            object.__setattr__(obj, name, parent[t])
        parents[name] = parent
    for obj in objects:
        bound = set(obj.__dict__.get(BOUND, ())) | set(names)
        object.__setattr__(obj, BOUND, frozenset(bound))
    return parents


def stack_rows(objects: Sequence[Any], name: str) -> np.ndarray:
    """``getattr(obj, name)`` of every object as one read-only array (for data that never changes): a copy, or for
    one object a view.  Read-only for any number of objects, so that a compiled kernel reading it is compiled once."""
    if len(objects) == 1:
        stacked = getattr(objects[0], name)[np.newaxis]
    else:
        stacked = np.stack([getattr(obj, name) for obj in objects])
    stacked.flags.writeable = False
    return stacked
