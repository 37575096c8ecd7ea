#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that PyTorchReferenceTest compares this project with.

Run by hand, never by the tests or CI (PyTorch is not needed to test):
    /usr/bin/python3 src/test/resources/pytorch/make_fixtures.py
with Debian's python3-torch (1.13). Each fixture is a text file of named tensors: a line "name d1 d2 ..."
(the shape; "name" alone for a scalar), then a line of the values in row-major order. Layer fixtures are
computed in float64 (the Java side compares its double reference layers tightly and its float kernels at
float tolerance); Adam and the whole training step in float32, as PyTorch trains.
"""
import os
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.dirname(os.path.abspath(__file__))


def write(name, tensors):
    with open(os.path.join(OUT, name + ".txt"), "w") as f:
        f.write("# written by make_fixtures.py with torch %s\n" % torch.__version__)
        for key, t in tensors:
            t = torch.as_tensor(t).detach()
            f.write(" ".join([key] + [str(d) for d in t.shape]) + "\n")
            fmt = "%.17g" if t.dtype == torch.float64 else "%.9g"
            f.write(" ".join(fmt % v for v in t.reshape(-1).tolist()) + "\n")


def batch_norm():
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    bn = nn.BatchNorm2d(3).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -0.7, 0.3], dtype=torch.float64))
        bn.bias.copy_(torch.tensor([0.1, 0.2, -0.4], dtype=torch.float64))
    bn.train()
    y = bn(x)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    y.backward(dy)
    bn.eval()
    with torch.no_grad():
        y_eval = bn(x)
    write("batchnorm", [("x", x), ("gamma", bn.weight), ("beta", bn.bias), ("y", y), ("dy", dy), ("dx", x.grad),
                        ("dgamma", bn.weight.grad), ("dbeta", bn.bias.grad), ("running_mean", bn.running_mean),
                        ("running_var", bn.running_var), ("y_eval", y_eval)])


def conv(stride):
    g = torch.Generator().manual_seed(2 + stride)
    x = torch.randn(2, 3, 7, 7, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(x, w, stride=stride, padding=1)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    y.backward(dy)
    write("conv-stride%d" % stride, [("x", x), ("w", w), ("y", y), ("dy", dy), ("dx", x.grad), ("dw", w.grad)])


def cross_entropy():
    g = torch.Generator().manual_seed(4)
    logits = (torch.randn(5, 10, generator=g, dtype=torch.float64) * 3).requires_grad_()
    labels = torch.tensor([3, 0, 9, 3, 7])
    loss = F.cross_entropy(logits, labels)  # the mean over the batch
    loss.backward()
    write("cross-entropy", [("logits", logits), ("labels", labels.double()), ("loss", loss), ("dlogits", logits.grad)])


def adam():
    g = torch.Generator().manual_seed(5)
    p = torch.randn(20, generator=g).requires_grad_()
    p0 = p.detach().clone()
    opt = torch.optim.Adam([p], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    tensors = [("p0", p0)]
    for step in range(1, 4):
        grad = torch.randn(20, generator=g) * (10 ** (step - 2))  # gradients of three scales
        p.grad = grad.clone()
        opt.step()
        tensors += [("grad%d" % step, grad), ("p%d" % step, p.detach().clone())]
    write("adam", tensors)


def seed_network_step():
    """One training step of the seed network (conv 3x3 32 -> BN -> ReLU -> pool, conv 3x3 64 -> BN -> ReLU -> pool,
    linear to 10) on 4 images of 28x28, from weights drawn here, in the parameter order of this project's flat buffer."""
    torch.manual_seed(6)
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64 * 7 * 7, 10))
    with torch.no_grad():  # BN's affine parameters away from their initial 1 and 0, so that they are exercised
        for bn in (net[1], net[5]):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    params = [p for p in net.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in params])
    x = torch.rand(4, 1, 28, 28)
    labels = torch.tensor([1, 7, 7, 2])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    loss = F.cross_entropy(net(x), labels)
    opt.zero_grad()
    loss.backward()
    grads = torch.cat([p.grad.reshape(-1) for p in params])
    opt.step()
    flat1 = torch.cat([p.detach().reshape(-1) for p in params])
    state = torch.cat([net[1].running_mean, net[1].running_var, net[5].running_mean, net[5].running_var])
    write("seed-network-step", [("x", x), ("labels", labels.float()), ("params", flat0), ("loss", loss), ("grads", grads),
                                ("params_after", flat1), ("state_after", state)])


if __name__ == "__main__":
    batch_norm()
    conv(1)
    conv(2)
    cross_entropy()
    adam()
    seed_network_step()
