import numpy as np

from sr.metrics import psnr_y, ssim_y


def test_psnr_of_a_known_error():
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a.copy()
    b[..., 1] += 10  # G + 10 changes Y by 10 * 128.553 / 255
    expected = 10 * np.log10(255 ** 2 / (10 * 128.553 / 255) ** 2)
    assert abs(psnr_y(a, b, 2) - expected) < 1e-9


def test_shave_ignores_the_border():
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a.copy()
    b[:2] = 0
    assert psnr_y(a, b, 2) == float("inf")
    step = 100 * 219 / 255  # luma of grey 100 minus luma of black
    expected = 10 * np.log10(255 ** 2 / (step ** 2 / 18))  # 1 of 18 shaved rows differs
    assert abs(psnr_y(a, b, 1) - expected) < 1e-9


def test_ssim_is_one_for_equal_pictures_and_lower_for_noise():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert abs(ssim_y(a, a, 2) - 1) < 1e-12
    assert ssim_y(a, noisy, 2) < ssim_y(a, np.clip(a.astype(int) + 5, 0, 255).astype(np.uint8), 2) < 1


def test_ssim_of_flat_pictures_is_the_luminance_term():
    a = np.full((30, 30, 3), 60, np.uint8)
    b = np.full((30, 30, 3), 200, np.uint8)
    m1, m2 = 16 + 60 * 219 / 255, 16 + 200 * 219 / 255
    c1 = (0.01 * 255) ** 2
    assert abs(ssim_y(a, b, 3) - (2 * m1 * m2 + c1) / (m1 ** 2 + m2 ** 2 + c1)) < 1e-9
