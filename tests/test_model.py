import pytest
import torch
import torch.nn.functional as F

import srcnn
from tests.helpers import perturbed_model


@pytest.mark.parametrize("arch, radius, params", [("9-1-5", 6, 8129), ("9-5-5", 8, 57281)])
def test_architecture_sizes(arch, radius, params):
    model = srcnn.build(arch)
    assert model.radius == radius
    assert sum(p.numel() for p in model.parameters()) == params
    assert params <= 60_000


@pytest.mark.parametrize("arch", ["9-1-5", "9-5-5"])
@pytest.mark.parametrize("shape", [(1, 1, 17, 23), (3, 1, 40, 9), (2, 1, 9, 9)])
def test_output_has_input_shape(arch, shape):
    model = perturbed_model(arch)
    assert model(torch.rand(shape)).shape == shape


def test_valid_core_shrinks_by_radius():
    model = perturbed_model("9-5-5")
    assert model.forward_valid(torch.rand(2, 1, 40, 35)).shape == (2, 1, 24, 19)


def test_forward_is_valid_core_on_mirror_padding():
    model = perturbed_model("9-1-5")
    x = torch.rand(1, 1, 21, 30)
    padded = F.pad(x, (6, 6, 6, 6), mode="reflect")
    assert torch.equal(model(x), model.forward_valid(padded))


def test_fresh_residual_network_is_identity():
    x = torch.rand(1, 1, 20, 20)
    assert torch.equal(srcnn.build("9-5-5")(x), x)


def test_config_rebuilds_the_same_architecture():
    model = srcnn.build("9-5-5", filters=(32, 16), residual=False)
    again = srcnn.SRCNN(**model.config)
    assert again.config == model.config
    again.load_state_dict(model.state_dict())   # raises if any shape differs
    x = torch.rand(1, 1, 20, 20)
    assert torch.equal(again(x), model(x))


def test_rejects_even_kernels_and_unknown_names():
    with pytest.raises(ValueError):
        srcnn.SRCNN(kernels=(9, 2, 5))
    with pytest.raises(ValueError):
        srcnn.build("9-3-5")
