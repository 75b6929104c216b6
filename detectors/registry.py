"""Name -> detector factory registry (torchgeo's ``get_model`` style).

Detectors register themselves with :func:`register`; the CLI and flows only ever ask for a
name, so adding a detector never touches the pipelines.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from detectors.errors import UnknownDetectorError

_FACTORIES: dict[str, Callable[..., Any]] = {}
_MODALITY: dict[str, str] = {}

#: Modules whose import registers the built-in detectors.
_BUILTIN_MODULES = ("detectors.sar", "detectors.fire")


def register(name: str, modality: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class/function decorator: make ``name`` constructible through :func:`get_detector`."""

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        _FACTORIES[name] = factory
        _MODALITY[name] = modality
        return factory

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)


def list_detectors(modality: str | None = None) -> list[str]:
    """Registered detector names, optionally only those of one modality (``sar``/``optical``)."""
    _load_builtins()
    return sorted(n for n, m in _MODALITY.items() if modality is None or m == modality)


def detector_modality(name: str) -> str:
    _load_builtins()
    if name not in _MODALITY:
        raise UnknownDetectorError(f"unknown detector {name!r}; known: {', '.join(list_detectors())}")
    return _MODALITY[name]


def get_detector(name: str, device: str | None = None, **kwargs: Any) -> Any:
    """Build the detector registered as ``name`` on ``device`` (``cpu``/``cuda``/None=auto)."""
    _load_builtins()
    if name not in _FACTORIES:
        raise UnknownDetectorError(f"unknown detector {name!r}; known: {', '.join(list_detectors())}")
    if kwargs:
        _check_options(name, kwargs)
    return _FACTORIES[name](device=resolve_device(device), **kwargs)


def detector_options(name: str) -> list[str]:
    """The keyword options detector ``name`` takes: its constructor's named parameters, plus what
    ``option_names()`` lists for one that takes ``**params`` (the CFAR's parameter dataclass)."""
    _load_builtins()
    if name not in _FACTORIES:
        raise UnknownDetectorError(f"unknown detector {name!r}; known: {', '.join(list_detectors())}")
    factory = _FACTORIES[name]
    named = [p.name for p in inspect.signature(factory).parameters.values()
             if p.name != "device" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    listed = getattr(factory, "option_names", None)
    return sorted(set(named) | set(listed() if listed is not None else ()))


def _check_options(name: str, kwargs: dict[str, Any]) -> None:
    """An option a detector does not take is a clear DetectorInputError naming it and the known
    ones, not a TypeError from deep inside a constructor. A constructor taking ``**params``
    without listing them (``option_names``) checks them itself."""
    from detectors.errors import DetectorInputError

    factory = _FACTORIES[name]
    open_ended = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
    if open_ended and getattr(factory, "option_names", None) is None:
        return
    known = detector_options(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise DetectorInputError(f"{name}: unknown option(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(known) or 'none'}")


def resolve_device(device: str | None) -> "torch.device":
    """``auto``/None -> cuda when available, else cpu; anything else passed to torch.device."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from detectors.errors import DetectorInputError

        raise DetectorInputError("device 'cuda' requested but CUDA is not available on this machine")
    return dev
