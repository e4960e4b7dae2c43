"""PSNR and SSIM on luma, as in the SRCNN paper and later super-resolution tables.

Both take 8-bit RGB arrays (H, W, 3), compute Y (BT.601 studio swing) in float64,
shave `shave` pixels from every border and use peak 255.
"""

import numpy as np

from sr.imaging import luma

SSIM_WINDOW = 11   # side of SSIM's Gaussian window (Wang et al. 2004)


def _shaved_lumas(reference: np.ndarray, test: np.ndarray, shave: int) -> list:
    if reference.shape != test.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {test.shape}")
    return [y[shave:y.shape[0] - shave, shave:y.shape[1] - shave]   # shave 0: all of y
            for y in (luma(reference), luma(test))]


def psnr_y(reference: np.ndarray, test: np.ndarray, shave: int) -> float:
    """PSNR in dB of test against reference, on shaved luma."""
    return psnr(*_shaved_lumas(reference, test, shave))


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB, peak 255, of two arrays of one shape on 0..255 (any dtype)."""
    diff = reference.astype(np.float64) - test
    mse = float(np.mean(diff ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def _gaussian_filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 2-D filtering, 'valid' region only: (H, W) -> (H-10, W-10)."""
    k = len(window)
    rows = np.lib.stride_tricks.sliding_window_view(x, k, axis=0) @ window  # (H-k+1, W)
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=1) @ window


def ssim_y(reference: np.ndarray, test: np.ndarray, shave: int) -> float:
    """SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) on shaved luma."""
    a, b = _shaved_lumas(reference, test, shave)
    g = np.exp(-0.5 * (np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2) ** 2 / 1.5 ** 2)
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _gaussian_filter_valid(a, g), _gaussian_filter_valid(b, g)
    var_a = _gaussian_filter_valid(a * a, g) - mu_a ** 2
    var_b = _gaussian_filter_valid(b * b, g) - mu_b ** 2
    cov = _gaussian_filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())
