"""The explicit regime: a learned latent z refined step by step, read by a learned decoder f_gamma(x, z).

Everything of the parametric regime carries over (same step network, same signals, gradients now
taken with respect to z *through the decoder*); only the predictor is learned too, jointly with the
step network. ``latent_tokens`` tokens of ``latent_dim`` make up z.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..tasks import TaskFamily
from .backbone import LearnerConfig, ModelConfig
from .parametric import ParametricLearner


class Decoder(nn.Module):
    """f_gamma(x, z) = MLP([x, flatten(z)]): two GELU hidden layers of ``hidden`` units."""

    def __init__(self, in_dim: int, latent: int, hidden: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim + latent, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        # x [T, M, D], z [T, L, Z] -> [T, M, O]
        zf = z.flatten(1).unsqueeze(1).expand(-1, x.shape[1], -1)
        return self.net(torch.cat([x, zf.to(x.dtype)], -1))


class ExplicitLearner(ParametricLearner):
    regime = "explicit"

    def __init__(self, name: str, family: TaskFamily, cfg: LearnerConfig, model: ModelConfig,
                 batch_size: int, context_size: int):
        super().__init__(name, family, cfg, model, batch_size, context_size)
        self.decoder = Decoder(family.in_dim, cfg.latent_tokens * cfg.latent_dim, cfg.decoder_hidden,
                               family.out_dim)

    def state_shape(self) -> tuple[int, int]:
        return self.cfg.latent_tokens, self.cfg.latent_dim

    def initial_state(self) -> Tensor:
        return torch.zeros(self.state_shape())

    def f(self, x: Tensor, theta: Tensor) -> Tensor:
        return self.decoder(x, theta)
