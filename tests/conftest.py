"""Test-wide settings: one torch thread. The tests run tiny models, where extra threads buy
nothing and oversubscribed cores (parallel jobs, busy CI machines) slow them down badly."""
import torch

torch.set_num_threads(1)
