import pytest
import torch
import torch.nn.functional as F

import srcnn
from sr.model_files import ARCHITECTURES
from tests.helpers import perturbed_model


@pytest.mark.parametrize("arch, radius, params", [("9-1-5", 6, 8129), ("9-5-5", 8, 57281),
                                                  ("11-5-5", 9, 59841)])
def test_architecture_sizes(arch, radius, params):
    model = srcnn.build(arch)
    assert model.radius == radius
    assert sum(p.numel() for p in model.parameters()) == params
    assert params <= 60_000


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("shape", [(1, 1, 17, 23), (3, 1, 40, 10), (2, 1, 10, 10)])
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


def test_rejects_even_kernels_and_malformed_names():
    with pytest.raises(ValueError):
        srcnn.SRCNN(kernels=(9, 2, 5))
    for name in ("9-4-5", "9-5", "nine-5-5"):
        with pytest.raises(ValueError):
            srcnn.build(name)
    assert srcnn.build("9-3-5").kernels == (9, 3, 5)   # the paper's 9-3-5 is an SRCNN too


@pytest.mark.parametrize("small, big", [("9-5-5", "11-5-5"), ("9-1-5", "9-5-5"),
                                        ("9-1-5", "11-5-5")])
def test_a_grown_network_computes_exactly_what_it_grew_from(small, big):
    model = perturbed_model(small)
    bigger = srcnn.grown(model, srcnn.kernels_of(big))
    assert srcnn.architecture_name(bigger) == big and bigger.radius > model.radius
    x = torch.rand(2, 1, 31, 26)             # borders included: the mirror gives the same pixels
    with torch.no_grad():
        torch.testing.assert_close(bigger(x), model(x), rtol=0, atol=1e-6)


def test_kernels_cannot_shrink_or_grow_by_odd_steps():
    model = perturbed_model("9-5-5")
    for kernels in [(9, 1, 5), (10, 5, 5), (11, 5)]:
        with pytest.raises(ValueError):
            srcnn.grown(model, kernels)


def test_every_offered_architecture_builds_and_names_itself():
    for name in ARCHITECTURES:
        assert srcnn.architecture_name(srcnn.build(name)) == name
