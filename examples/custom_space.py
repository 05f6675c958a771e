"""A user's own space: subclass SearchSpace, register it, and every dnas strategy searches it. Three
conv layers, each a kernel (1, 3, 5) and a width (4, 8, 16): 729 nets, scored by 40 steps of training on digits."""
import random

import torch
import torch.nn as nn
import dnas
from dnas.data import load_dataset
from dnas.errors import GenotypeError
from dnas.evaluators.base import EvalResult

KERNELS, WIDTHS = (1, 3, 5), (4, 8, 16)

@dnas.register_space("chain")
class ChainSpace(dnas.SearchSpace):
    cardinalities, input_shape = (len(KERNELS), len(WIDTHS)) * 3, (1, 8, 8)  # every in-bounds vector is valid

    def parse(self, obj):  # a tuple of (kernel, width) layers, or the genotype dict to_dict writes
        arch = tuple((int(k), int(w)) for k, w in (obj["layers"] if isinstance(obj, dict) else obj))
        if len(arch) == 3 and all(k in KERNELS and w in WIDTHS for k, w in arch):
            return arch
        raise GenotypeError(f"chain arch: 3 (kernel in {KERNELS}, width in {WIDTHS}) layers, got {arch}")
    def to_dict(self, arch):
        return {"format": "dnas.genotype", "version": 1, "space": self.name, "layers": [list(x) for x in arch]}
    def encode(self, arch):  # one index per decision; decode inverts it
        return [i for k, w in arch for i in (KERNELS.index(k), WIDTHS.index(w))]
    def decode(self, v):
        return tuple((KERNELS[v[i]], WIDTHS[v[i + 1]]) for i in range(0, 6, 2))
    def sample(self, rng):  # neighbours, distance, graph, onehot, cost: SearchSpace's defaults
        return self.decode([rng.randrange(c) for c in self.cardinalities])
    def build(self, arch, *, num_classes=10, in_channels=None, **_):
        layers, c = [], in_channels or 1
        for k, w in arch:
            layers, c = layers + [nn.Conv2d(c, w, k, padding=k // 2), nn.BatchNorm2d(w), nn.ReLU()], w
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


class DigitsTraining:  # an evaluator: anything with evaluate(arch, budget) -> EvalResult
    def __init__(self, space, data, steps=40, n=1400):
        self.space, self.x, self.y, self.steps, self.n = space, data.x, data.y, steps, n
    def evaluate(self, arch, budget=None):
        torch.manual_seed(0)
        net, x, y, n = self.space.build(arch), self.x, self.y, self.n
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        for _ in range(self.steps):
            i = torch.randint(0, n, (64,))
            opt.zero_grad(), nn.functional.cross_entropy(net(x[i]), y[i]).backward(), opt.step()
        acc = (net.eval()(x[n:]).argmax(1) == y[n:]).float().mean().item()
        return EvalResult(accuracy=100 * acc, cost={"params_m": self.space.cost(arch, "params")})


if __name__ == "__main__":
    torch.set_num_threads(1)
    space, data = dnas.get_space("chain"), load_dataset("digits")  # built in, no download
    arch = space.sample(random.Random(0))
    print("sampled", arch, "->", type(space.build(arch)).__name__, f"{space.cost(arch, 'params'):.4f}M params")
    for strategy, opts in (("random", {}), ("evolution", {"population_size": 4}), ("local-search", {})):
        r = dnas.run_strategy(space, strategy, DigitsTraining(space, data), budget=12, objectives="error,params",
                              **opts)
        print(f"{strategy:13s} best {r['best_accuracy']:.1f}% {r['best_arch']}  hypervolume {r['hypervolume']:.3f}")
