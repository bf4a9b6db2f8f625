"""Typed, named places for what a room keeps per app (its broker, clock, caches), instead of bare string keys
in `app.extensions` spread over the code. Each slot is defined once, beside what it holds; its key in
`app.extensions` is its name, so a debugger shows it there."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from flask import Flask, current_app

T = TypeVar("T")
_MISSING = object()


class AppSlot(Generic[T]):
    def __init__(self, name: str, doc: str = "", default: Callable[[Flask], T] | None = None):
        self.name, self.__doc__, self._default = name, doc, default

    def get(self, app: Flask | None = None) -> T:
        """The value for `app` (default: the current app); built by `default` on first use, if the slot has one."""
        app = app or current_app._get_current_object()
        value = app.extensions.get(self.name, _MISSING)
        if value is _MISSING:
            if self._default is None:
                raise RuntimeError(f"{self.name} is not set up in this app (see its room's init_app)")
            value = app.extensions[self.name] = self._default(app)
        return value

    def find(self, app: Flask | None = None) -> T | None:
        """The value, or None when it is not set (no default is built)."""
        return (app or current_app).extensions.get(self.name)

    def set(self, app: Flask, value: T) -> T:
        app.extensions[self.name] = value
        return value

    def clear(self, app: Flask | None = None) -> None:
        (app or current_app).extensions.pop(self.name, None)

    def __repr__(self) -> str:
        return f"AppSlot({self.name!r})"
