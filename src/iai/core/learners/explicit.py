"""The explicit regime: a learned latent z refined step by step, read by a learned decoder f_gamma(x, z).

Everything of the parametric regime carries over (same step network, same signals, gradients now
taken with respect to z *through the decoder*); only the predictor is learned too, jointly with the
step network. ``latent_tokens`` tokens of ``latent_dim`` make up z.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from iai.core.tasks import TaskFamily
from iai.core.learners.backbone import LearnerConfig, ModelConfig
from iai.core.learners.parametric import ParametricLearner


class Decoder(nn.Module):
    """f_gamma(x, z): an MLP whose first layer is FiLM-conditioned on z, then two GELU layers.

    h = W_x x + W_z z + (A_x x) * (A_z z): the multiplicative term lets the decoder express the
    bilinear maps x^T W z that a linear family needs (a plain MLP on [x, z] learns them slowly).
    """

    def __init__(self, in_dim: int, latent: int, hidden: int, out_dim: int):
        super().__init__()
        self.x_in, self.z_in = nn.Linear(in_dim, 2 * hidden), nn.Linear(latent, 2 * hidden)
        self.net = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        # x [T, M, D], z [T, L, Z] -> [T, M, O]
        ax, bx = self.x_in(x).chunk(2, -1)  # [T, M, H] each
        az, bz = self.z_in(z.flatten(1).to(x.dtype)).unsqueeze(1).chunk(2, -1)  # [T, 1, H] each
        return self.net(ax + az + bx * bz)


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
