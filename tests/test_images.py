import gzip
import io

import numpy as np
import pytest
import torch

from repro.data.images import (AUGMENTATIONS, CIFAR10_CLASSES, CIFAR10_RESPLIT, FASHION_MNIST_CLASSES,
                               Augmentation, AugmentedBatches, ImageSet, Preprocessing, cifar10,
                               evaluation_batches, fashion_mnist, stratified_split)
from repro.seeding import rng

pytestmark = pytest.mark.usefixtures("one_thread")

IDENTITY = Preprocessing(mean=(0.0,), std=(1 / 255,))
"""x = u (up to rounding): batches come back as the augmented pixel values, in float."""


def numbered(count: int, classes: int = 4, side: int = 6) -> ImageSet:
    """Grey images whose every pixel holds the image's index, so any crop or mirror still says which it is."""
    pixels = torch.arange(count, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, side, side).contiguous()
    return ImageSet(pixels, torch.arange(count) % classes, tuple(f"c{k}" for k in range(classes)), "numbered")


def write_idx(path, values: np.ndarray, magic: int | None = None, shape: tuple[int, ...] | None = None) -> None:
    shape = values.shape if shape is None else shape
    header = np.array([0x0800 + len(shape) if magic is None else magic, *shape], ">i4").tobytes()
    path.write_bytes(gzip.compress(header + values.astype(np.uint8).tobytes()))


def fashion_files(directory, train_images: np.ndarray, **corruption) -> None:
    """The four IDX files, with ten images per split, the train images written with `corruption`."""
    labels = np.arange(10)
    write_idx(directory / "train-images-idx3-ubyte.gz", train_images, **corruption)
    write_idx(directory / "train-labels-idx1-ubyte.gz", labels)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", np.zeros((10, 28, 28)))
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", labels)


@pytest.mark.needs_data
def test_cifar10_is_the_test_set_with_1000_images_per_class():
    data = cifar10()
    assert data.images.shape == (10_000, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.classes == CIFAR10_CLASSES and data.name == "cifar10"
    assert data.class_counts().tolist() == [1_000] * 10
    # Real photographs: the channel means of CIFAR-10 (about 0.49, 0.48, 0.45) and a wide spread of values.
    means = data.images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(means, torch.tensor([0.494, 0.485, 0.450]), atol=0.01)
    assert cifar10() is cifar10()  # parsed once per process


def test_fashion_mnist_has_60000_and_10000_images_with_balanced_classes():
    train, test = fashion_mnist()
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.classes == test.classes == FASHION_MNIST_CLASSES and len(FASHION_MNIST_CLASSES) == 10
    assert train.class_counts().tolist() == [6_000] * 10 and test.class_counts().tolist() == [1_000] * 10
    # The published statistics of the training set: mean 0.2860, standard deviation 0.3530.
    stats = Preprocessing.fit(train)
    assert stats.mean[0] == pytest.approx(0.2860, abs=1e-4) and stats.std[0] == pytest.approx(0.3530, abs=1e-4)


def test_a_missing_fashion_mnist_file_names_the_path_and_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as error:
        fashion_mnist()
    assert str(tmp_path / "train-images-idx3-ubyte.gz") in str(error.value)


@pytest.mark.parametrize("corruption, message", [
    (dict(magic=0x0801), "magic number 0x00000801, expected 0x00000803"),
    (dict(shape=(60_000, 28, 28)), r"announces shape \(60000, 28, 28\)"),
    ({}, "expected 6000 images of each of the 10 classes"),
])
def test_corrupt_fashion_mnist_files_are_rejected(tmp_path, monkeypatch, corruption, message):
    fashion_files(tmp_path, np.zeros((10, 28, 28)), **corruption)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=message):
        fashion_mnist()


def test_a_file_that_is_not_gzip_is_rejected(tmp_path, monkeypatch):
    fashion_files(tmp_path, np.zeros((10, 28, 28)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz: not a readable gzip file"):
        fashion_mnist()


def test_a_missing_or_corrupt_cifar10_file_is_a_clear_error(shared_data):
    with pytest.raises(FileNotFoundError, match="expected cifar10/cifar10_test.npz at"):
        cifar10()
    shared_data({"cifar10/cifar10_test.npz": b"garbage"})
    with pytest.raises(ValueError, match="not a readable CIFAR-10 archive"):
        cifar10()
    archive = io.BytesIO()
    np.savez(archive, images=np.zeros((10, 32, 32), np.uint8), labels=np.arange(10), classes=np.array(CIFAR10_CLASSES))
    shared_data({"cifar10/cifar10_test.npz": archive.getvalue()})
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, 32, 32, 3\)"):
        cifar10()


def test_image_sets_reject_inconsistent_tensors():
    images, classes = torch.zeros(3, 1, 2, 2, dtype=torch.uint8), ("a", "b")
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(images.float(), torch.zeros(3, dtype=torch.long), classes, "x")
    with pytest.raises(ValueError, match="one per image"):
        ImageSet(images, torch.zeros(2, dtype=torch.long), classes, "x")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        ImageSet(images, torch.tensor([0, 1, 2]), classes, "x")


def test_the_split_is_stratified_disjoint_covering_and_fixed_by_its_seed():
    data = numbered(200)  # 50 per class
    parts = stratified_split(data, {"train": 30, "validation": 10, "test": 5})
    index = {part: subset.images[:, 0, 0, 0].long() for part, subset in parts.items()}
    assert {part: subset.class_counts().tolist() for part, subset in parts.items()} == {
        "train": [30] * 4, "validation": [10] * 4, "test": [5] * 4}
    every = torch.cat(list(index.values()))
    assert len(set(every.tolist())) == len(every) == 180  # disjoint
    assert all(torch.equal(ids, ids.sort().values) for ids in index.values())  # dataset order
    assert all(torch.equal(parts[p].labels, index[p] % 4) for p in parts)  # labels stay with their images
    again = stratified_split(data, {"train": 30, "validation": 10, "test": 5})
    assert all(torch.equal(again[p].images, parts[p].images) for p in parts)
    other = stratified_split(data, {"train": 30, "validation": 10, "test": 5}, seed=1)
    assert not torch.equal(other["train"].images, parts["train"].images)


@pytest.mark.needs_data
def test_the_cifar10_resplit_has_8000_1000_1000_images():
    parts = stratified_split(cifar10(), CIFAR10_RESPLIT)
    assert {part: len(subset) for part, subset in parts.items()} == {"train": 8_000, "validation": 1_000,
                                                                     "test": 1_000}
    assert parts["test"].class_counts().tolist() == [100] * 10


def test_a_split_asking_too_much_or_nothing_is_rejected():
    with pytest.raises(ValueError, match="ask 51 images of each class .* has only 50"):
        stratified_split(numbered(200), {"train": 50, "test": 1})
    with pytest.raises(ValueError, match="positive number of images per class"):
        stratified_split(numbered(200), {"train": 0})


@pytest.mark.needs_data
def test_normalisation_is_fitted_on_the_training_part_only():
    parts = stratified_split(cifar10(), {"train": 100, "test": 100})
    fitted = Preprocessing.fit(parts["train"])
    pixels = parts["train"].images.double() / 255
    assert fitted.mean == pytest.approx(pixels.mean(dim=(0, 2, 3)).tolist(), abs=1e-9)
    assert fitted.std == pytest.approx(pixels.std(dim=(0, 2, 3), correction=0).tolist(), abs=1e-9)
    assert fitted.mean != Preprocessing.fit(cifar10()).mean
    x = fitted(parts["train"].images)
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=0.05)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=0.05)


def test_grey_images_are_repeated_to_three_channels_and_resized():
    grey = numbered(8, side=28)
    prepare = Preprocessing.fit(grey, channels=3, size=64)
    assert len(prepare.mean) == 3 and prepare.mean[0] == prepare.mean[2]
    x = prepare(grey.images)
    assert x.shape == (8, 3, 64, 64) and torch.equal(x[:, 0], x[:, 2])
    # Bilinear interpolation of a constant image is that constant.
    expected = (torch.arange(8.0) / 255 - prepare.mean[0]) / prepare.std[0]
    assert torch.allclose(x[:, 1], expected.view(-1, 1, 1).expand(-1, 64, 64), atol=1e-5)


def test_bad_preprocessing_is_rejected():
    with pytest.raises(ValueError, match="only a one-channel set"):
        colour = numbered(10)
        Preprocessing.fit(ImageSet(colour.images.expand(-1, 3, -1, -1).contiguous(), colour.labels, colour.classes,
                                   "colour"), channels=1)
    with pytest.raises(ValueError, match="std must be positive"):
        Preprocessing(mean=(0.5,), std=(0.0,))
    with pytest.raises(ValueError, match="one value per channel"):
        Preprocessing(mean=(0.5, 0.5), std=(0.2,))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        Preprocessing(mean=(0.5,) * 3, std=(0.2,) * 3)(torch.zeros(2, 2, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="expected uint8"):
        IDENTITY(torch.zeros(2, 1, 4, 4))


def test_each_augmented_image_is_a_shifted_crop_or_its_mirror_with_its_own_parameters():
    augment = Augmentation(pad=2, padding_mode="reflect", flip=True)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=rng("test-images"))
    out = augment(images, rng("test-augmentation"))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images.float(), (2, 2, 2, 2), mode="reflect").to(torch.uint8)
    found = []
    for image, original in zip(out, padded):
        crops = {(dy, dx): original[:, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)}
        matches = [(dy, dx, mirrored) for (dy, dx), crop in crops.items() for mirrored in (False, True)
                   if torch.equal(image, crop.flip(-1) if mirrored else crop)]
        assert matches, "an augmented image is no crop of its padded original"
        found.append(matches[0])
    assert len({(dy, dx) for dy, dx, _ in found}) > 10  # offsets drawn per image, not per batch
    assert 10 < sum(mirrored for *_, mirrored in found) < 54
    assert torch.equal(augment(images, rng("test-augmentation")), out)


def test_batches_are_a_pure_function_of_seed_and_step_and_keep_labels_with_images():
    data = numbered(40)
    stream = AugmentedBatches(data, 8, seed=3, augmentation=AUGMENTATIONS["cifar10"], preprocessing=IDENTITY)
    state = torch.random.get_rng_state()
    torch.manual_seed(123)  # the global random state must not matter
    late = stream.batch_at(7)
    torch.manual_seed(456)
    again = AugmentedBatches(data, 8, seed=3, augmentation=AUGMENTATIONS["cifar10"], preprocessing=IDENTITY)
    assert all(torch.equal(a, b) for a, b in zip(late, again.batch_at(7)))
    torch.random.set_rng_state(state)
    x, labels = stream.batch_at(0)
    assert x.shape == (8, 1, 6, 6) and x.dtype == torch.float32 and labels.dtype == torch.int64
    seen = []
    for step in range(stream.per_epoch):
        x, labels = stream.batch_at(step)
        index = x[:, 0, 0, 0].round().long()
        assert torch.allclose(x, index.float().view(-1, 1, 1, 1).expand_as(x), atol=1e-4)  # still constant
        assert torch.equal(labels, index % 4)
        seen += index.tolist()
    assert sorted(seen) == list(range(40))  # one epoch visits every image once
    other = AugmentedBatches(data, 8, seed=4, augmentation=AUGMENTATIONS["cifar10"], preprocessing=IDENTITY)
    assert not torch.equal(other.batch_at(0)[1], stream.batch_at(0)[1])


def test_evaluation_batches_visit_every_image_once_in_order_unaugmented():
    data = numbered(10)
    batches = list(evaluation_batches(data, 4, IDENTITY))
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    x = torch.cat([x for x, _ in batches])
    assert torch.allclose(x, data.images.float(), atol=1e-4)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(evaluation_batches(data, 0, IDENTITY))


def test_bad_augmentation_settings_are_rejected():
    with pytest.raises(ValueError, match="pad must be a number of pixels >= 0"):
        Augmentation(pad=-1)
    with pytest.raises(ValueError, match="unknown padding mode 'mirror'; valid choices"):
        Augmentation(pad=2, padding_mode="mirror")
    with pytest.raises(ValueError, match="unknown key"):
        Augmentation.from_dict({"pad": 2, "flips": True})
    with pytest.raises(ValueError, match="reflect padding by 6 pixels needs images larger"):
        Augmentation(pad=6)(torch.zeros(1, 1, 6, 6, dtype=torch.uint8), rng("x"))
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 10\]"):
        AugmentedBatches(numbered(10), 11, 0, AUGMENTATIONS["cifar10"], IDENTITY)
