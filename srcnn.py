"""SRCNN: the three-layer super-resolution network of Dong et al. (2014/2016).

The network refines an image that was already interpolated to the target size:
    patch extraction (k1 x k1, f1 filters) -> ReLU
    non-linear mapping (k2 x k2, f2 filters) -> ReLU
    reconstruction (k3 x k3, 1 filter)
"9-1-5" and "9-5-5" name the kernel sizes (k1, k2, k3) of the paper's variants;
"11-5-5" sees 2 px further (radius 9) for 59,841 parameters.

All convolutions are "valid" (no padding).  `forward` pads the input once by the
receptive radius (mirror image about the edge, "reflect"), so the output has the
input's size and any tile cut with a halo of `radius` pixels gives exactly the
pixels of the whole image.
"""

import torch
import torch.nn.functional as F
from torch import nn


class SRCNN(nn.Module):
    """Three valid convolutions over one channel (luma), kernels (k1, k2, k3) each odd
    and filters (f1, f2) as above.  residual: the network predicts a correction added
    to its input (output = input + net(input)); else the image, as in the paper."""

    def __init__(self, kernels=(9, 5, 5), filters=(64, 32), residual=True):
        super().__init__()
        k1, k2, k3 = (int(k) for k in kernels)
        f1, f2 = (int(f) for f in filters)
        if any(k < 1 or k % 2 == 0 for k in (k1, k2, k3)):
            raise ValueError(f"kernel sizes must be odd and positive, got {kernels}")
        self.kernels, self.filters, self.residual = (k1, k2, k3), (f1, f2), bool(residual)
        self.conv1 = nn.Conv2d(1, f1, k1)
        self.conv2 = nn.Conv2d(f1, f2, k2)
        self.conv3 = nn.Conv2d(f2, 1, k3)
        self.reset_parameters()

    @property
    def radius(self) -> int:
        """Pixels of context each output pixel needs on every side."""
        return sum((k - 1) // 2 for k in self.kernels)

    @property
    def config(self) -> dict:
        """Plain values that rebuild this architecture: SRCNN(**model.config)."""
        return {"kernels": list(self.kernels), "filters": list(self.filters),
                "residual": self.residual}

    def reset_parameters(self) -> None:
        # The first two layers keep PyTorch's default (fan-in scaled uniform)
        # initialisation: He initialisation makes their activations so large
        # that Adam's first steps on the last layer swing the output by tenths
        # and kill the ReLUs of the 9-5-5 network.  The last layer starts at
        # zero when residual, so an untrained network returns its input
        # (bicubic) instead of noise; otherwise small, as in the paper.
        for conv in (self.conv1, self.conv2):
            conv.reset_parameters()
        if self.residual:
            nn.init.zeros_(self.conv3.weight)
        else:
            nn.init.normal_(self.conv3.weight, std=1e-3)
        nn.init.zeros_(self.conv3.bias)

    def forward_valid(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H + 2r, W + 2r) -> (N, 1, H, W): no padding, r = self.radius."""
        y = F.relu(self.conv1(x))
        y = F.relu(self.conv2(y))
        y = self.conv3(y)
        if self.residual:
            r = self.radius
            y = y + x[:, :, r:x.shape[2] - r, r:x.shape[3] - r]
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N, 1, H, W), the picture mirrored beyond its edges for the
        border pixels.  H and W must exceed the radius (PyTorch's reflect padding)."""
        r = self.radius
        return self.forward_valid(F.pad(x, (r, r, r, r), mode="reflect"))


def build(architecture: str = "9-5-5", filters=(64, 32), residual=True) -> SRCNN:
    """SRCNN from its kernel sizes as a name: "9-1-5", "9-5-5", "11-5-5"."""
    return SRCNN(kernels_of(architecture), filters, residual)


def kernels_of(architecture: str) -> tuple:
    """"9-5-5" -> (9, 5, 5); ValueError unless three whole numbers."""
    kernels = tuple(int(k) for k in architecture.split("-"))
    if len(kernels) != 3:
        raise ValueError(f"{architecture!r} does not name three kernel sizes")
    return kernels


def architecture_name(model: SRCNN) -> str:
    return "-".join(str(k) for k in model.kernels)


def grown(model: SRCNN, kernels) -> SRCNN:
    """A copy of model with larger kernels that computes what model computes.

    Each old kernel sits in the middle of the new one and the new outer taps are zero,
    so every output pixel still sees only the pixels it saw before (the mirror padding
    by the larger radius repeats the same pixels).  Training can then go on from it
    and put the wider context to use, e.g. 9-5-5 -> 11-5-5.  (The sums gain zero
    terms, so results agree to float rounding, not always bit for bit.)"""
    kernels = tuple(int(k) for k in kernels)
    if len(kernels) != 3 or any(new < old or (new - old) % 2
                                for new, old in zip(kernels, model.kernels)):
        raise ValueError(f"cannot grow kernels {model.kernels} into {kernels}")
    bigger = SRCNN(kernels, model.filters, model.residual)
    state = model.state_dict()
    for i, (new, old) in enumerate(zip(kernels, model.kernels), start=1):
        p = (new - old) // 2                                    # zero taps on each side
        state[f"conv{i}.weight"] = F.pad(state[f"conv{i}.weight"], (p, p, p, p))
    bigger.load_state_dict(state)
    return bigger.train(model.training)
