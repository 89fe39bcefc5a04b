"""What every learned learner shares: its configs, the set transformer, and the step features.

The backbone is a pre-norm transformer over a *set* of typed tokens (no positional encoding: the
observations of a mini-batch are unordered). Each token group (state, observation, gradient,
history, query) has its own input projection plus a learned type embedding. Attention uses
PyTorch's ``scaled_dot_product_attention``; every token attends to the *context* tokens only,
which are the first ``n_context`` tokens of the sequence. That one rule gives both layouts used
here without masks:

- parametric / explicit: everything is context (state, gradient and observation tokens all see
  each other);
- implicit: only the observations are context; each query token reads the observations but not
  the other queries, so a prediction never depends on which other points are asked about.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iai.core.vocab import LEARNED_REGIMES, MODES
from iai.utils import ConfigError

SIGNALS = ("obs", "grad", "both")
STATES = ("logits", "hidden", "probs", "probs_residual")
UPDATE_SCALES = ("constant", "inverse_step")
STEP_FEATURES = ("none", "gain", "log_n")
GRAD_NORMS = ("rms", "none")
DECODERS = ("film", "bilinear")
TOKENS = ("unit", "coordinate")
UPDATES = ("network", "sgd", "meta_sgd")


def _config_from(cls, section: str, values: dict[str, Any]):
    """Build dataclass ``cls`` from a params mapping, naming unknown keys in one clear message."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {unknown}; expected some of {sorted(names)}")
    return cls(**values)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the set transformer (params ``model:``)."""

    width: int = 64
    depth: int = 2
    heads: int = 4
    ff: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("width", "depth", "heads", "ff"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ConfigError(f"model.{name}: expected an integer >= 1, got {getattr(self, name)!r}")
        if self.width % self.heads:
            raise ConfigError(f"model.width: expected a multiple of model.heads = {self.heads}, got {self.width}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout: expected a number in [0, 1), got {self.dropout!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        return _config_from(cls, "model", values)


@dataclass(frozen=True)
class LearnerConfig:
    """What kind of learner a run is (params ``runs: [...]`` entries, less family/name/model/train).

    ``update_scale='inverse_step'`` multiplies each update by b / (n + b), where n is the number of
    points already absorbed and b the mini-batch size (1 / (i + 1) at step i for equal batches):
    the gain of a running average, so the state settles as data accumulate and keeps settling past
    the number of steps seen in training. ``step_feature`` tells the step network where it is:
    ``gain`` feeds that same b / (n + b) (bounded, so it extrapolates to more steps), ``log_n``
    feeds log(1 + n) / 8 (unbounded: for the study). ``memory`` adds learned state tokens that the
    step network may use as it likes (carried and updated like the state, never read by f).
    ``tokens`` lays theta (or the explicit regime's z) out as units (``unit``: one token per output
    or hidden unit of the predictor, one per latent token of z) or as one token per scalar
    (``coordinate``: the layout of coordinate-wise learned optimizers, where one small function,
    told apart per coordinate by its unit embedding, is applied to every parameter and attention
    mixes them).
    ``nominal`` makes the update gain * (-exp(beta) * grad) + gain^2 * delta, with a learned beta:
    a consistent plain gradient step (SGD with step 1/n, a learned optimizer's "nominal term")
    leads, and the learned correction fades as data accumulate. For linear regression this is the
    structure of the Kalman update with an isotropic covariance, expanded in the gain.
    ``update: sgd`` replaces the step network by that plain gradient step alone, from a learned
    theta^(0) with a learned step size: MAML (:class:`~iai.core.learners.maml.MAMLLearner`); ``update:
    meta_sgd`` learns a step size per parameter (:class:`~iai.core.learners.maml.MetaSGDLearner`).
    """

    regime: str = "parametric"
    signal: str = "both"
    mode: str = "iterative"
    state: str = "logits"
    history: int = 0
    latent_tokens: int = 1
    latent_dim: int = 16
    decoder_hidden: int = 64
    decoder: str = "bilinear"
    update_scale: str = "inverse_step"
    step_feature: str = "gain"
    grad_norm: str = "none"
    nominal: bool = False
    memory: int = 0
    tokens: str = "unit"
    update: str = "network"
    arch: str | None = None  # the registered learner class that builds it (default: its regime's own)

    def __post_init__(self) -> None:
        for name, allowed in (("regime", LEARNED_REGIMES), ("signal", SIGNALS), ("mode", MODES), ("state", STATES),
                              ("update_scale", UPDATE_SCALES), ("step_feature", STEP_FEATURES),
                              ("grad_norm", GRAD_NORMS), ("decoder", DECODERS), ("tokens", TOKENS),
                              ("update", UPDATES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"run.{name}: expected one of {list(allowed)}, got {getattr(self, name)!r}")
        for name, low in (("history", 0), ("latent_tokens", 1), ("latent_dim", 1), ("decoder_hidden", 1),
                          ("memory", 0)):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise ConfigError(f"run.{name}: expected an integer >= {low}, got {value!r}")
        if self.regime == "implicit" and self.signal != "obs":
            raise ConfigError(f"run.signal: the implicit regime reads observations only; expected 'obs', "
                              f"got {self.signal!r}")
        if self.nominal and self.signal == "obs":
            raise ConfigError("run.nominal: the nominal gradient term needs signal 'grad' or 'both', got 'obs'")
        if not isinstance(self.nominal, bool):
            raise ConfigError(f"run.nominal: expected true or false, got {self.nominal!r}")
        if self.decoder != "bilinear" and self.regime != "explicit":
            raise ConfigError(f"run.decoder: only the explicit regime has a learned decoder; got {self.decoder!r} "
                              f"for the {self.regime} regime")
        if self.tokens != "unit" and self.regime == "implicit":
            raise ConfigError(f"run.tokens: only the parametric and explicit regimes have parameters to tokenize; "
                              f"got {self.tokens!r} for the implicit regime")
        if self.update in ("sgd", "meta_sgd"):  # MAML, Meta-SGD: no step network, nothing a network reads or carries
            extras = {"history": self.history, "memory": self.memory, "nominal": self.nominal}
            if (self.regime, self.mode, self.signal, self.tokens) != ("parametric", "iterative", "grad", "unit") or any(
                    extras.values()):
                raise ConfigError(f"run.update: {self.update!r} (MAML, Meta-SGD: plain gradient steps from a learned "
                                  "theta^(0)) needs "
                                  "regime 'parametric', mode 'iterative', signal 'grad', tokens 'unit' and no history, "
                                  f"memory or nominal; got regime {self.regime!r}, mode {self.mode!r}, signal "
                                  f"{self.signal!r}, tokens {self.tokens!r}, {extras}")
        if self.regime != "implicit" and self.state != "logits":
            raise ConfigError(f"run.state: only the implicit regime has a state choice; got {self.state!r} "
                              f"for the {self.regime} regime")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "LearnerConfig":
        values = dict(values)
        if values.get("regime") == "implicit":
            values.setdefault("signal", "obs")
        return _config_from(cls, "run", values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- the set transformer


class Block(nn.Module):
    """Pre-norm transformer block; queries are all tokens, keys and values the context tokens."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads, self.dropout = cfg.heads, cfg.dropout
        self.norm1, self.norm2 = nn.LayerNorm(cfg.width), nn.LayerNorm(cfg.width)
        self.q = nn.Linear(cfg.width, cfg.width)
        self.kv = nn.Linear(cfg.width, 2 * cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, cfg.ff), nn.GELU(), nn.Linear(cfg.ff, cfg.width),
                                 nn.Dropout(cfg.dropout))

    def _split(self, t: Tensor) -> Tensor:  # [T, S, W] -> [T, H, S, W/H]
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, h: Tensor, n_context: int, rows: slice = slice(None)) -> Tensor:
        # h [T, S, W]; the first n_context tokens are the keys and values; only the tokens in
        # `rows` are updated and returned (every token still serves as a key and value)
        z = self.norm1(h)
        q = self._split(self.q(z[:, rows]))
        k, v = self._split(self.kv(z[:, :n_context])).chunk(2, dim=-1)
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        h = h[:, rows] + F.dropout(self.out(att.transpose(1, 2).flatten(-2)), self.dropout, self.training)
        return h + self.mlp(self.norm2(h))


class SetTransformer(nn.Module):
    """Typed token groups in, the same groups out (each ``[T, S_g, width]``).

    ``inputs`` maps a group name (one of ``token_dims``) to its features ``[T, S_g, F_g]`` and an
    optional per-token embedding ``[S_g, width]`` (which unit of the state a token belongs to).
    """

    def __init__(self, cfg: ModelConfig, token_dims: dict[str, int]):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.ModuleDict({name: nn.Linear(dim, cfg.width) for name, dim in token_dims.items()})
        self.type_embed = nn.ParameterDict({name: nn.Parameter(torch.randn(cfg.width) * 0.02) for name in token_dims})
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)
        # False: the last block computes every token (the slower path, for `iai bench train --compare`)
        self.prune = True

    def forward(self, inputs: list[tuple[str, Tensor, Tensor | None]], n_context_groups: int,
                outputs: tuple[int, int] | None = None) -> list[Tensor | None]:
        """``inputs``: ``(group, features, unit_embedding or None)`` in order; the first
        ``n_context_groups`` groups are the context that every token attends to.

        ``outputs = (first, stop)``: only groups first..stop-1 are read by the caller, so the last
        block computes queries, attention and MLP for their tokens alone (the others still give keys
        and values) and the other groups come back as None. The read groups' numbers are the same;
        a step whose head reads one state token among 16 observations skips most of the last block.
        """
        parts = []
        for name, feats, unit in inputs:
            e = self.embed[name](feats) + self.type_embed[name]
            parts.append(e + unit if unit is not None else e)
        sizes = [p.shape[1] for p in parts]
        n_context = sum(sizes[:n_context_groups])
        first, stop = outputs or (0, len(parts))
        rows = slice(sum(sizes[:first]), sum(sizes[:stop])) if self.prune else slice(None)
        h = torch.cat(parts, dim=1)  # [T, S, W]
        for i, block in enumerate(self.blocks):
            h = block(h, n_context, rows if i == len(self.blocks) - 1 else slice(None))
        read = list(self.norm(h).split(sizes[first:stop] if self.prune else sizes, dim=1))
        read = read if self.prune else read[first:stop]
        return [None] * first + read + [None] * (len(parts) - stop)


def zero_linear(d_in: int, d_out: int) -> nn.Linear:
    """An output layer that starts at zero, so a fresh learner starts by not moving its state."""
    layer = nn.Linear(d_in, d_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


# ---------------------------------------------------------------------------- step information


def step_features(n_seen: Tensor, b: int, cfg: "LearnerConfig") -> Tensor:
    """Per-task features ``[T, F]`` that tell a step how much data its state has absorbed.

    A one-shot learner (``cfg.mode == 'one_shot'``) also gets log(1 + b) / 8, b the points it reads at
    once: the dataset size n, which its iterative twin learns from the gain b / (n + b) as it goes
    (without it, a set encoder's attention cannot tell 128 points from 1024)."""
    kind = cfg.step_feature
    if kind == "none":
        out = n_seen.new_zeros(n_seen.shape[0], 0)
    elif kind == "gain":
        out = (b / (n_seen + b)).unsqueeze(-1)
    else:
        out = (torch.log1p(n_seen) / 8.0).unsqueeze(-1)
    if cfg.mode == "one_shot":
        out = torch.cat([out, torch.full_like(n_seen, math.log1p(b) / 8.0).unsqueeze(-1)], -1)
    return out


def n_step_features(cfg: "LearnerConfig") -> int:
    return (0 if cfg.step_feature == "none" else 1) + (cfg.mode == "one_shot")


def update_gain(n_seen: Tensor, b: int, kind: str) -> Tensor:
    """Multiplier ``[T]`` of this step's update: 1, or b / (n + b) (the running-average gain)."""
    if kind == "constant":
        return torch.ones_like(n_seen)
    return b / (n_seen + b)


def normalize_grad(g: Tensor, kind: str) -> Tensor:
    """Gradient features ``[T, K, E + 1]``: the direction (g / rms) and log rms, per task.

    ``rms`` keeps direction and magnitude apart, as learned optimizers do, so that features stay of
    order one whatever the loss scale; ``none`` feeds the raw gradient (and a zero magnitude column).
    """
    if kind == "none":
        return torch.cat([g, g.new_zeros(*g.shape[:-1], 1)], -1)
    rms = g.pow(2).mean((-1, -2), keepdim=True).add(1e-12).sqrt()  # [T, 1, 1]
    return torch.cat([g / rms, rms.log().expand(*g.shape[:-1], 1) / 4.0], -1)

