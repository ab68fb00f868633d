"""Which adapter turns a model object into a ``SimulableModel``: the adapter registry.

``as_simulable(model)`` returns ``model`` itself when it already has the protocol members
(``glmmdiag.protocol``), otherwise the first registered adapter whose *match* accepts it, tried in
this order:

1. adapters registered with ``register_adapter`` (the most recently registered first);
2. the built-in ones: glmmdiag fits, statsmodels results (``GLM``, the discrete count and binary
   models, ``MixedLM``), and a pointer to ``from_sklearn`` for scikit-learn estimators.

A third-party library plugs in its own model type with::

    from glmmdiag.adapters import register_adapter

    class MyAdapter:                       # the SimulableModel members (glmmdiag.protocol)
        def __init__(self, fit): ...
        family_name = "poisson"; nobs = ...; integer_response = True
        def observed(self): ...; def trials(self): ...; def fitted(self): ...
        def simulate(self, n, rng, conditional=True): ...   # (nobs, n) array

    register_adapter("mylib.models.MyFitResult", MyAdapter)

after which ``glmmdiag.simulate_residuals(my_fit)`` works. A *match* is a class (``isinstance``),
the qualified name "module.ClassName" of a class (matched against the object's class and its
bases without importing the library) or a predicate ``match(obj) -> bool``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from glmmdiag.protocol import missing_members

__all__ = ["as_simulable", "register_adapter", "unregister_adapter", "registered_adapters"]

Match = type | str | Callable[[Any], bool]
Factory = Callable[[Any], Any]


@dataclass(frozen=True)
class _Entry:
    match: Match
    factory: Factory
    name: str

    def accepts(self, obj) -> bool:
        m = self.match
        if isinstance(m, type):
            return isinstance(obj, m)
        if isinstance(m, str):
            return any(f"{c.__module__}.{c.__qualname__}" == m for c in type(obj).__mro__)
        return bool(m(obj))


_USER: list[_Entry] = []
_BUILTIN: list[_Entry] = []


def _describe(match: Match) -> str:
    if isinstance(match, type):
        return f"{match.__module__}.{match.__qualname__}"
    if isinstance(match, str):
        return match
    return getattr(match, "__qualname__", repr(match))


def register_adapter(match: Match, factory: Factory, *, name: str | None = None) -> Factory:
    """Make ``as_simulable`` (and so ``simulate_residuals``) accept a new kind of model object.

    Parameters
    ----------
    match : class, str or callable
        Which objects the adapter is for: a class (``isinstance(obj, match)``), the qualified
        name "package.module.ClassName" of a class (compared with the object's class and its
        bases, so the library need not be imported to register it), or a predicate
        ``match(obj) -> bool``.
    factory : callable
        ``factory(obj)`` returns an object with the ``SimulableModel`` members
        (``glmmdiag.protocol``); it may raise ``TypeError``/``GlmmdiagError`` for objects it
        cannot simulate honestly.
    name : str, optional
        A label for ``registered_adapters()`` (default: the match's name).

    Returns
    -------
    callable
        ``factory``, unchanged (so ``register_adapter`` can be used as a decorator through
        ``functools.partial``).

    Notes
    -----
    Registered adapters are tried before the built-in ones, the most recent first, so a library
    can also replace a built-in adapter. Registering the same (match, factory) again moves it to
    the front instead of adding a duplicate.
    """
    if not (isinstance(match, (type, str)) or callable(match)):
        raise TypeError(f"match must be a class, a 'module.ClassName' string or a predicate; got {match!r}")
    if not callable(factory):
        raise TypeError(f"factory must be callable (model -> SimulableModel); got {factory!r}")
    unregister_adapter(match, factory)
    _USER.insert(0, _Entry(match, factory, name or _describe(match)))
    return factory


def unregister_adapter(match: Match, factory: Factory | None = None) -> bool:
    """Remove user registrations of ``match`` (only those with ``factory`` when given).

    Returns
    -------
    bool
        Whether anything was removed. Built-in adapters cannot be removed (register a
        replacement instead: registrations are tried first).
    """
    keep = [e for e in _USER if not (e.match == match and (factory is None or e.factory is factory))]
    removed = len(keep) != len(_USER)
    _USER[:] = keep
    return removed


def registered_adapters() -> list[tuple[str, str]]:
    """(name, "user" or "built-in") of every adapter, in the order ``as_simulable`` tries them."""
    return [(e.name, "user") for e in _USER] + [(e.name, "built-in") for e in _BUILTIN]


def _register_builtin(match: Match, factory: Factory, name: str) -> None:
    _BUILTIN.append(_Entry(match, factory, name))


def as_simulable(model):
    """The ``SimulableModel`` view of ``model``; a clear TypeError for objects that cannot simulate.

    Parameters
    ----------
    model
        An object with the protocol members (returned as is), or any object a registered adapter
        accepts (see the module notes).

    Returns
    -------
    SimulableModel
    """
    if not missing_members(model):
        return model
    for entry in (*_USER, *_BUILTIN):
        if entry.accepts(model):
            return entry.factory(model)
    cls = type(model)
    raise TypeError(
        f"cannot simulate from a {cls.__module__}.{cls.__name__}: it is not a glmmdiag fit, a supported "
        f"statsmodels result or an object with the SimulableModel members (missing: "
        f"{', '.join(missing_members(model))}), and no registered adapter accepts it; simulate responses "
        f"yourself and wrap them with glmmdiag.from_simulations(observed, simulated, fitted), or register "
        f"an adapter with glmmdiag.adapters.register_adapter"
    )
