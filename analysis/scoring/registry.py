"""Which backend scores a spec: the engine factory above the in-process, Ray and served backends.

The backends import the interface in :mod:`analysis.scoring.backends`; only this module knows all three,
so nothing imports in a circle (as ``features/registry.py`` and ``rewrite/registry.py`` do for theirs)."""

from __future__ import annotations

from analysis.errors import ModelError
from analysis.scoring.backends import ENGINES, InProcessBackend, ScoringBackend, is_served_spec
from analysis.scoring.models import RewardModel


def make_backend(spec, settings=None, *, name: str | None = None, engine: str | None = None,
                 **options) -> ScoringBackend:
    """The backend for ``spec`` (a model spec, a RewardModel, a backend, or ``http://HOST:PORT/v1#MODEL``).

    ``engine`` None: ``vllm-server`` for http(s) specs, else ``local``. ``options`` go to the engine
    (ray: address, gpus, actors; vllm-server: tokenizer, timeout, batch_texts).
    """
    if isinstance(spec, RewardModel):
        if engine not in (None, "local"):
            raise ModelError(f"engine {engine!r}: a model already loaded in this process scores locally",
                             "Bad option")
        return InProcessBackend(spec)
    if not isinstance(spec, str) and isinstance(spec, ScoringBackend):
        return spec
    if engine is None:
        engine = "vllm-server" if is_served_spec(spec) else "local"
    if engine not in ENGINES:
        raise ModelError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}", "Bad option")
    if engine == "vllm-server":
        from analysis.scoring.served import ServedBackend

        return ServedBackend(spec, settings, name=name, **options)
    if is_served_spec(spec):
        raise ModelError(f"{spec}: an http(s) model is a served RM; use --engine vllm-server (or no --engine)",
                         "Bad option")
    if engine == "ray":
        from analysis.scoring.ray_backend import RayBackend

        return RayBackend(spec, settings, name=name, **options)
    if options:
        raise ModelError(f"engine local takes no option {sorted(options)[0]!r} (a Ray or served-RM option)",
                         "Bad option")
    from analysis.scoring.loading import load_reward_model

    return InProcessBackend(load_reward_model(spec, settings, name=name))
