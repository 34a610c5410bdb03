"""Full-reference image quality, batched in torch: PSNR and SSIM.

For images x (reference) and y of shape (batch, channels, H, W) and a peak value L (`data_range`):

    PSNR(x, y) = 10 log10(L^2 / MSE),   MSE = mean (x - y)^2           (+inf where x = y)

    SSIM(x, y) = mean over pixels of  ((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))

with local means, variances and covariance weighted by a Gaussian window (sigma 1.5, 11 x 11:
radius int(3.5 sigma + 0.5), scipy's default truncation as scikit-image uses it), population
(not sample) moments, C1 = (K1 L)^2, C2 = (K2 L)^2, K1 = 0.01, K2 = 0.03 (Wang et al. 2004).
SSIM is averaged over the positions where the window lies wholly inside the image, which is what
`skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`
computes after filtering with reflected borders and cropping the window radius; channels are
averaged. `border` crops that many pixels from every side first (for super-resolution the custom
is the scale factor: the outermost pixels depend on how the resampler treats the image edge).
"""

import torch
import torch.nn.functional as F

SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03


def _crop(images: torch.Tensor, border: int) -> torch.Tensor:
    if border < 0:
        raise ValueError(f"border must be >= 0 pixels, got {border}")
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (batch, channels, H, W), got {tuple(images.shape)}")
    if 2 * border >= min(images.shape[-2:]):
        raise ValueError(f"border {border} leaves nothing of a {tuple(images.shape[-2:])} image")
    return images[..., border:images.shape[-2] - border, border:images.shape[-1] - border] if border else images


def _pair(reference: torch.Tensor, other: torch.Tensor, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    if reference.shape != other.shape:
        raise ValueError(f"images differ in shape: {tuple(reference.shape)} vs {tuple(other.shape)}")
    return _crop(reference, border).double(), _crop(other, border).double()


def psnr(reference: torch.Tensor, other: torch.Tensor, data_range: float = 1.0, border: int = 0) -> torch.Tensor:
    """(batch,) PSNR in dB of `other` against `reference`, in float64; +inf for identical images."""
    x, y = _pair(reference, other, border)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range ** 2 / mse)


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = 3.5) -> torch.Tensor:
    """The normalised 1-D Gaussian of scipy.ndimage.gaussian_filter: taps |i| <= int(truncate sigma + 0.5)."""
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    window = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return window / window.sum()


def ssim(reference: torch.Tensor, other: torch.Tensor, data_range: float = 1.0, border: int = 0) -> torch.Tensor:
    """(batch,) mean SSIM of `other` against `reference` (module docstring), in float64."""
    x, y = _pair(reference, other, border)
    window = gaussian_window().to(x.device)
    if min(x.shape[-2:]) < len(window):
        raise ValueError(f"SSIM needs images of at least {len(window)} x {len(window)} pixels after the border "
                         f"crop, got {tuple(x.shape[-2:])}")
    channels = x.shape[1]
    rows = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    columns = window.view(1, 1, 1, -1).expand(channels, 1, 1, -1)

    def local_mean(t: torch.Tensor) -> torch.Tensor:
        # Separable and 'valid': only positions where the whole window lies inside the image.
        return F.conv2d(F.conv2d(t, rows, groups=channels), columns, groups=channels)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x ** 2
    var_y = local_mean(y * y) - mu_y ** 2
    cov = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(dim=1)
