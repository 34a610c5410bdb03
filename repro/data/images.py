"""Small real image sets for the image-classification notebook: CIFAR-10 and Fashion-MNIST, a fixed
stratified split, per-channel normalisation, and seeded augmented training batches.

- CIFAR-10: `cifar10/cifar10_test.npz` under REPRO_DATA_DIR, the official **test** set (10,000
  colour images, 32x32, 1,000 per class). It is the only CIFAR-10 split reachable offline, so the
  study re-splits it (`CIFAR10_RESPLIT`, through `stratified_split`).
- Fashion-MNIST: the IDX files of the Debian package `dataset-fashion-mnist` (60,000 train +
  10,000 test grey 28x28 images, 10 classes), parsed here with numpy.

Both loaders check what they read (shapes, magic numbers, image and per-class counts) and stop with
one error naming the file; both cache the parsed set in-process, so the tensors they return are
shared: treat them as read-only.

Pixels stay uint8 until a batch is drawn; `Preprocessing` turns a batch into the model's input,
`Augmentation` perturbs training batches with parameters drawn per image from a generator derived
from (seed, step), so `AugmentedBatches.batch_at(step)` is a pure function of its arguments.
"""

import gzip
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2

from repro import ROOT
from repro.config import StrictConfig, choice
from repro.data.batches import ShuffledBatches
from repro.data.files import data_file
from repro.seeding import rng

CIFAR10_FILE = "cifar10/cifar10_test.npz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where the Debian package `dataset-fashion-mnist` installs the IDX files (a system path, the same
on every Debian/Ubuntu machine); the setting FASHION_MNIST_DIR points elsewhere."""
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
FASHION_MNIST_INSTALL_HINT = ("install the Debian/Ubuntu package (`apt-get install dataset-fashion-mnist`; "
                              "`make setup` does this where apt is available), or set FASHION_MNIST_DIR to a "
                              "directory holding the four IDX files")

# DEVIATION: [cifar10-resplit] only the official CIFAR-10 test set is here: it is re-split, fixed and stratified,
# into 8,000 training, 1,000 validation and 1,000 test images; the official 50,000 training images are not used.
CIFAR10_RESPLIT = {"train": 800, "validation": 100, "test": 100}
"""Images per class in each part of the CIFAR-10 re-split (use with `stratified_split`)."""


@dataclass(frozen=True)
class ImageSet:
    """Labelled images of one dataset (or a part of it)."""

    images: torch.Tensor
    """(N, C, H, W) uint8 pixels."""
    labels: torch.Tensor
    """(N,) int64 class indices into `classes`."""
    classes: tuple[str, ...]
    name: str
    """The dataset's name ("cifar10", "fashion-mnist"); parts of a split keep it."""

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"{self.name}: images must be a uint8 (N, C, H, W) tensor, "
                             f"got {self.images.dtype} of shape {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"{self.name}: labels must be an int64 ({len(self.images)},) tensor, one per image, "
                             f"got {self.labels.dtype} of shape {tuple(self.labels.shape)}")
        if not self.classes:
            raise ValueError(f"{self.name}: no class names given")
        if len(self.labels) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < len(self.classes):
            raise ValueError(f"{self.name}: labels must lie in [0, {len(self.classes) - 1}] ({len(self.classes)} "
                             f"classes), got [{int(self.labels.min())}, {int(self.labels.max())}]")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "ImageSet":
        """The images at `index` (a slice, an index tensor or a boolean mask)."""
        return ImageSet(self.images[index], self.labels[index], self.classes, self.name)

    def to(self, device: torch.device) -> "ImageSet":
        """The same set on `device`: on a GPU, augmentation and preprocessing run there too."""
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes, self.name)

    def class_counts(self) -> torch.Tensor:
        """(classes,) number of images of each class."""
        return torch.bincount(self.labels.cpu(), minlength=len(self.classes))


def _check_counts(images: ImageSet, per_class: int, source) -> None:
    """A wrong or truncated file shows as a wrong count; it never reaches training."""
    counts = images.class_counts()
    if (counts != per_class).any():
        found = dict(zip(images.classes, counts.tolist()))
        raise ValueError(f"{source}: expected {per_class} images of each of the {len(images.classes)} classes "
                         f"({per_class * len(images.classes)} in all), got {found}")


def cifar10() -> ImageSet:
    """The CIFAR-10 test set: 10,000 images (N, 3, 32, 32), 1,000 per class."""
    return _read_cifar10(data_file(CIFAR10_FILE))


@lru_cache(maxsize=2)
def _read_cifar10(path: Path) -> ImageSet:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("images", "labels", "classes")}
    except (OSError, ValueError, KeyError, zlib.error) as error:
        raise ValueError(f"{path}: not a readable CIFAR-10 archive with arrays images, labels and classes "
                         f"({type(error).__name__}: {error})") from error
    pixels, classes = arrays["images"], tuple(str(c) for c in arrays["classes"])
    if pixels.dtype != np.uint8 or pixels.shape[1:] != (32, 32, 3):
        raise ValueError(f"{path}: images must be uint8 (N, 32, 32, 3), got {pixels.dtype} {pixels.shape}")
    if classes != CIFAR10_CLASSES:
        raise ValueError(f"{path}: classes must be {CIFAR10_CLASSES} (the CIFAR-10 label order), got {classes}")
    images = ImageSet(torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
                      torch.from_numpy(arrays["labels"].astype(np.int64)), classes, "cifar10")
    _check_counts(images, 1_000, path)
    return images


def fashion_mnist() -> tuple[ImageSet, ImageSet]:
    """Fashion-MNIST (train, test) as the package ships them: 60,000 and 10,000 images (N, 1, 28, 28)."""
    setting = os.environ.get("FASHION_MNIST_DIR")
    # A relative setting is taken from the repository root, as REPRO_DATA_DIR is (repro.data.files).
    return _read_fashion_mnist(ROOT / setting if setting else FASHION_MNIST_DIR)


@lru_cache(maxsize=2)
def _read_fashion_mnist(directory: Path) -> tuple[ImageSet, ImageSet]:
    parts = []
    for split, per_class in (("train", 6_000), ("t10k", 1_000)):
        images = _read_idx(directory / f"{split}-images-idx3-ubyte.gz", dims=3)
        labels = _read_idx(directory / f"{split}-labels-idx1-ubyte.gz", dims=1)
        if images.shape != (len(labels), 28, 28):
            raise ValueError(f"{directory}/{split}-*: expected (N, 28, 28) images for {len(labels)} labels, "
                             f"got {images.shape}")
        part = ImageSet(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                        FASHION_MNIST_CLASSES, "fashion-mnist")
        _check_counts(part, per_class, f"{directory}/{split}-*")
        parts.append(part)
    return parts[0], parts[1]


def _read_idx(path: Path, dims: int) -> np.ndarray:
    """An IDX file of unsigned bytes: magic number 0x0800 + dims, then `dims` big-endian int32 sizes,
    then the values in row-major order (LeCun's MNIST format, which Fashion-MNIST keeps)."""
    if not path.is_file():
        raise FileNotFoundError(f"Fashion-MNIST: expected {path.name} at {path}, but there is no such file; "
                                f"{FASHION_MNIST_INSTALL_HINT}")
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: not a readable gzip file ({type(error).__name__}: {error})") from error
    header = 4 * (1 + dims)
    if len(raw) < header:
        raise ValueError(f"{path}: {len(raw)} bytes, shorter than the {header}-byte IDX header")
    magic, *shape = np.frombuffer(raw, ">i4", count=1 + dims).tolist()
    if magic != 0x0800 + dims:
        raise ValueError(f"{path}: IDX magic number {magic:#010x}, expected {0x0800 + dims:#010x} "
                         f"(unsigned bytes, {dims} dimension(s))")
    if len(raw) != header + int(np.prod(shape)):
        raise ValueError(f"{path}: the header announces shape {tuple(shape)} ({int(np.prod(shape))} values), "
                         f"but {len(raw) - header} follow it")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy()


def stratified_split(images: ImageSet, per_class: dict[str, int], seed: int = 0) -> dict[str, ImageSet]:
    """Disjoint parts with `per_class[part]` images of every class, drawn by a seeded permutation.

    Within each class c, a permutation pi_c of its images (stream "stratified-split", name, seed) is
    cut into consecutive runs of the asked lengths, in the order of `per_class`. The split depends on
    nothing but (dataset, seed, counts): keep `seed` fixed and vary the training seeds instead, so that
    every run is scored on the same images. Each part lists its images in dataset order.
    """
    if not per_class or any(not isinstance(n, int) or n < 1 for n in per_class.values()):
        raise ValueError(f"per_class must map each part's name to a positive number of images per class, "
                         f"got {per_class}")
    needed = sum(per_class.values())
    counts = images.class_counts()
    if int(counts.min()) < needed:
        smallest = int(counts.argmin())
        raise ValueError(f"{images.name}: the parts ask {needed} images of each class {per_class}, but class "
                         f"{images.classes[smallest]!r} has only {int(counts[smallest])}")
    generator = rng("stratified-split", images.name, seed)
    chosen = {part: [] for part in per_class}
    for label in range(len(images.classes)):
        members = torch.nonzero(images.labels.cpu() == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        start = 0
        for part, count in per_class.items():
            chosen[part].append(members[start:start + count])
            start += count
    return {part: images.subset(torch.cat(index).sort().values) for part, index in chosen.items()}


def channel_statistics(pixels: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of each channel of uint8 (B, C, H, W) pixels, on the [0, 1] scale."""
    if pixels.dtype != torch.uint8 or pixels.dim() != 4:
        raise ValueError(f"expected uint8 (B, C, H, W) pixels, got {pixels.dtype} of shape {tuple(pixels.shape)}")
    means, stds = [], []
    for channel in pixels.unbind(dim=1):
        # Exact in float64 from the 256-bin histogram, with no float copy of the whole set.
        frequency = torch.bincount(channel.flatten().cpu(), minlength=256).double()
        value = torch.arange(256, dtype=torch.float64) / 255
        mean = float((frequency * value).sum() / frequency.sum())
        means.append(mean)
        stds.append(float(((frequency * (value - mean) ** 2).sum() / frequency.sum()).sqrt()))
    return tuple(means), tuple(stds)


@dataclass(frozen=True)
class Preprocessing:
    """uint8 pixels u -> model input x, the same for training and evaluation batches:

        x_c = (u_c / 255 - mean_c) / std_c,

    where a one-channel image is first repeated to len(mean) channels (grey images for a network
    built for colour), and x is then resized bilinearly to `size` x `size` when `size` is set
    (a pretrained CNN fine-tuned at a larger input than the data's).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: int | None = None

    def __post_init__(self):
        if not self.mean or len(self.mean) != len(self.std):
            raise ValueError(f"mean and std need one value per channel, got {len(self.mean)} and {len(self.std)}")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive in every channel, got {self.std}")
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be a positive number of pixels or None (keep the size), got {self.size}")

    @classmethod
    def fit(cls, train: ImageSet, channels: int | None = None, size: int | None = None) -> "Preprocessing":
        """Mean and standard deviation of each channel over every pixel of `train` (pass the training
        part only, so nothing of the evaluation images leaks into the input scaling), repeated to
        `channels` channels for a one-channel set."""
        # DEVIATION: [image-augmentation] per-channel standardisation; the AdaTape release scales pixels to [-1, 1].
        stats = list(zip(*channel_statistics(train.images)))
        if channels is not None and channels != len(stats):
            if len(stats) != 1:
                raise ValueError(f"only a one-channel set can be repeated to {channels} channels; "
                                 f"{train.name} has {len(stats)}")
            stats = stats * channels
        return cls(tuple(m for m, _ in stats), tuple(s for _, s in stats), size)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) uint8 -> (B, len(mean), size, size) float32."""
        channels = len(self.mean)
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, channels):
            raise ValueError(f"expected uint8 (B, C, H, W) images with C = 1 or {channels}, "
                             f"got {images.dtype} of shape {tuple(images.shape)}")
        x = images.float().div(255).expand(-1, channels, -1, -1)
        mean, std = (torch.tensor(v, device=x.device).view(1, -1, 1, 1) for v in (self.mean, self.std))
        x = (x - mean) / std
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            x = v2.functional.resize(x, [self.size, self.size], v2.InterpolationMode.BILINEAR, antialias=True)
        return x


PADDING_MODES = ("constant", "reflect", "edge", "symmetric")
"""torchvision's padding modes; "constant" pads with zeros."""


@dataclass(frozen=True)
class Augmentation(StrictConfig):
    """Per image: a random `H` x `W` crop of the image padded by `pad` pixels on each side (a shift
    by up to `pad` pixels in each direction), then, with `flip`, a horizontal mirror with probability
    1/2. The crop offsets (dy, dx) ~ U{0..2 pad}^2 and the flips are drawn from the generator given,
    so the result is a function of the images and that generator alone."""

    pad: int
    padding_mode: str = "reflect"
    flip: bool = True

    def __post_init__(self):
        if self.pad < 0:
            raise ValueError(f"pad must be a number of pixels >= 0, got {self.pad}")
        choice("padding mode", self.padding_mode, PADDING_MODES)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, C, H, W) uint8 -> the same shape and dtype, augmented."""
        batch, channels, height, width = images.shape
        if self.padding_mode in ("reflect", "symmetric") and self.pad >= min(height, width):
            raise ValueError(f"{self.padding_mode} padding by {self.pad} pixels needs images larger than that, "
                             f"got {height}x{width}")
        out = images
        if self.pad:
            # torchvision's RandomCrop draws one crop per call; gathering one crop per image from the
            # padded batch keeps the whole batch in a few tensor operations, on any device.
            padded = v2.functional.pad(images, [self.pad], padding_mode=self.padding_mode)
            offsets = torch.randint(0, 2 * self.pad + 1, (2, batch, 1), generator=generator).to(images.device)
            offset_y, offset_x = offsets
            rows = offset_y + torch.arange(height, device=images.device)
            columns = offset_x + torch.arange(width, device=images.device)
            index = (rows[:, :, None] * padded.shape[-1] + columns[:, None, :]).view(batch, 1, -1)
            out = padded.flatten(2).gather(2, index.expand(-1, channels, -1)).view(batch, channels, height, width)
        if self.flip:
            mirrored = (torch.rand(batch, generator=generator) < 0.5).to(images.device)
            out = torch.where(mirrored.view(-1, 1, 1, 1), v2.functional.horizontal_flip(out), out)
        return out


# DEVIATION: [image-augmentation] small-image augmentation (random shifted crop + horizontal flip) instead of the
# AdaTape release's Inception crop, RandAugment(2, 15) and Mixup 0.5.
AUGMENTATIONS = {
    # The standard CIFAR recipe: shifts up to 4 pixels, reflected borders, mirror images.
    "cifar10": Augmentation(pad=4, padding_mode="reflect", flip=True),
    # Garments are centred and scaled to fill the 28-pixel frame on a black background: a smaller shift
    # keeps trousers and dresses whole, and zero padding continues the background. Mirroring keeps every
    # class (a mirrored shoe, shirt or bag is still one), though nearly all shoes in the set face left.
    "fashion-mnist": Augmentation(pad=2, padding_mode="constant", flip=True),
}
"""The training augmentation of each dataset, by `ImageSet.name`."""


class AugmentedBatches:
    """`batch_at(step) -> (x, labels)`: the step-th training batch, augmented and preprocessed.

    The examples come in epochs of seeded permutations (`ShuffledBatches`; the incomplete last batch
    of an epoch is dropped) and the augmentation draws from the stream ("image-augmentation", seed,
    step), so a batch is a pure function of (seed, step): a resumed run sees the batches it would
    have seen. Nothing touches the global random state.
    """

    def __init__(self, images: ImageSet, batch_size: int, seed: int, augmentation: Augmentation,
                 preprocessing: Preprocessing):
        self.images, self.seed, self.augmentation, self.preprocessing = images, seed, augmentation, preprocessing
        # ShuffledBatches orders example indices; its padding trim is a no-op on this all-ones mask.
        self.order = ShuffledBatches((torch.arange(len(images)), torch.ones(len(images), 1)), batch_size, seed)
        self.per_epoch = self.order.per_epoch

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.order.batch_at(step)[0]
        pixels = self.augmentation(self.images.images[index], rng("image-augmentation", self.seed, step))
        return self.preprocessing(pixels), self.images.labels[index]


def evaluation_batches(images: ImageSet, batch_size: int, preprocessing: Preprocessing):
    """Every image once, in order, preprocessed and not augmented: (x, labels) pairs."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(images), batch_size):
        yield preprocessing(images.images[start:start + batch_size]), images.labels[start:start + batch_size]
