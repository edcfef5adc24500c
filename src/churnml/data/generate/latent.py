"""The hidden dissatisfaction: disengagement and service-failure episodes (a drift that builds for
a few weeks, then recovers) and a mean-reverting noise shared by every signal."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.data.generate.parameters import GenerationParams


@dataclass
class Episodes:
    """One kind of episode for every customer: the level it has built, weeks left and weekly slope."""

    level: np.ndarray
    left: np.ndarray
    slope: np.ndarray

    @classmethod
    def none(cls, n: int) -> Episodes:
        return cls(np.zeros(n), np.zeros(n, np.int64), np.zeros(n))

    def reset(self, who: np.ndarray) -> None:
        """End the episode of `who` and forget its level (a customer who comes back starts afresh)."""
        self.level[who] = 0.0
        self.left[who] = 0


@dataclass
class Latent:
    """d_eng, d_srv and d_noise of every customer in the current week."""

    eng: Episodes  # disengagement
    srv: Episodes  # service failure
    noise: np.ndarray

    @classmethod
    def start(cls, rng: np.random.Generator, n: int, p: GenerationParams) -> Latent:
        """No episode running; the noise drawn from its stationary distribution."""
        noise = rng.normal(0.0, p.noise_sigma / np.sqrt(1 - p.noise_rho**2), n)
        return cls(Episodes.none(n), Episodes.none(n), noise)


def advance_latent(
    rng: np.random.Generator, lat: Latent, active: np.ndarray, onset_mult: np.ndarray, p: GenerationParams
) -> None:
    """Plant one week of dissatisfaction: the noise steps, active customers out of an episode may
    start one (disengagement at a rate set by their channel, service failure at a flat rate), and
    running episodes drift up while finished ones recover."""
    lat.noise = p.noise_rho * lat.noise + rng.normal(0.0, p.noise_sigma, lat.noise.size)
    new_eng = _onsets(rng, lat.eng, active, p.disengagement_onset * onset_mult)
    new_srv = _onsets(rng, lat.srv, active, p.service_onset)
    _start(rng, lat.eng, new_eng, p)
    _start(rng, lat.srv, new_srv, p)
    _drift(lat.eng, p)
    _drift(lat.srv, p)


def _onsets(rng: np.random.Generator, ep: Episodes, active: np.ndarray, chance: float | np.ndarray) -> np.ndarray:
    """Who starts an episode this week: active, not in one already, and drawn with `chance`."""
    return active & (ep.left == 0) & (rng.random(active.size) < chance)


def _start(rng: np.random.Generator, ep: Episodes, new: np.ndarray, p: GenerationParams) -> None:
    """Give each new episode its length in weeks and its weekly slope."""
    lo, hi = p.episode_weeks
    ep.left = np.where(new, rng.integers(lo, hi + 1, new.size), ep.left)
    ep.slope = np.where(new, rng.uniform(*p.episode_slope, new.size), ep.slope)


def _drift(ep: Episodes, p: GenerationParams) -> None:
    """A running episode adds its slope; otherwise the level decays by ``p.recovery_rho``."""
    ep.level = np.where(ep.left > 0, ep.level + ep.slope, ep.level * p.recovery_rho)
    ep.left = np.maximum(ep.left - 1, 0)
