"""hseg/augment.py: image and mask move together, crops and zooms, reproducibility, progressive sides."""
import pytest
import torch
import torch.nn.functional as F

from hseg.augment import augment_batch, draw_augment
from hseg.settings.train import Augment
from hseg.tree import IGNORE


def coordinate_batch(n=4, size=64):
    """Images whose channels 0/1 hold 10 + x / 10 + y (0 only outside after a transform) and
    masks whose label is a function of the coordinates."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = torch.stack([10 + xs, 10 + ys, torch.full_like(xs, 128)]).float()
    mask = ((xs // 8 + ys // 8) % 7).to(torch.uint8)
    return image.expand(n, -1, -1, -1).clone(), mask.expand(n, -1, -1).clone()


@pytest.mark.parametrize("aug, crop", [
    (Augment(hflip=True), 0),
    (Augment(hflip=True, scale=(0.5, 2.0)), 32),
    (Augment(hflip=True, scale=(0.7, 1.4), rotate=10, shift=0.1), 48),
    (Augment(hflip=False, scale=(0.5, 0.5)), 64),
])
def test_image_and_mask_move_together(aug, crop):
    images, masks = coordinate_batch()
    out_img, out_mask = augment_batch(images, masks, aug, torch.Generator().manual_seed(0), crop)
    side = crop or 64
    assert out_img.shape == (4, 3, side, side) and out_mask.shape == (4, side, side)
    assert set(out_mask.unique().tolist()) <= set(range(7)) | {IGNORE}
    labelled = out_mask != IGNORE
    assert labelled.any()
    # the source pixel each output image pixel came from (nearest), and the label there
    x = (out_img[:, 0] - 10).round().long().clamp(0, 63)
    y = (out_img[:, 1] - 10).round().long().clamp(0, 63)
    expected = ((x // 8 + y // 8) % 7).to(torch.uint8)
    agree = (expected == out_mask)[labelled].float().mean().item()
    assert agree > 0.97, agree
    # pixels with no label came from outside the image: black there
    outside = (out_img[:, 0] == 0) & (out_img[:, 1] == 0)
    assert (out_mask[outside] == IGNORE).all()


def test_crop_inside_the_image_has_no_ignored_pixels_and_zoom_out_has_some():
    images, masks = coordinate_batch(8)
    _, cropped = augment_batch(images, masks, Augment(scale=(1.0, 1.0)), torch.Generator().manual_seed(0), 32)
    assert not (cropped == IGNORE).any()
    _, zoomed_out = augment_batch(images, masks, Augment(scale=(0.5, 0.5)), torch.Generator().manual_seed(0), 64)
    assert (zoomed_out == IGNORE).float().mean() > 0.5  # the image fills a quarter of the output


def test_augmentation_is_reproducible_from_the_generator():
    images, masks = coordinate_batch()
    aug = Augment(scale=(0.5, 2.0), rotate=5, brightness=0.1, contrast=0.1)
    a = augment_batch(images, masks, aug, torch.Generator().manual_seed(7), 32)
    b = augment_batch(images, masks, aug, torch.Generator().manual_seed(7), 32)
    c = augment_batch(images, masks, aug, torch.Generator().manual_seed(8), 32)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_no_augmentation_is_the_identity():
    images, masks = coordinate_batch()
    out_img, out_mask = augment_batch(images, masks, Augment(hflip=False), torch.Generator().manual_seed(0))
    assert torch.equal(out_img, images) and torch.equal(out_mask, masks)


def test_progressive_side_renders_whole_images_at_fewer_pixels():
    """Side 32 from a 64 px cache, no other augmentation: each output pixel centre falls between
    four input pixels, so bilinear sampling gives the mean of each 2x2 block (avg_pool2d), and a
    mask constant on 2x2 blocks comes out as every second pixel."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64) * 255
    blocks = torch.randint(0, 7, (2, 32, 32), dtype=torch.uint8)
    masks = blocks.repeat_interleave(2, 1).repeat_interleave(2, 2)
    out_img, out_mask = augment_batch(images, masks, Augment(hflip=False), torch.Generator().manual_seed(0), 0, 32)
    assert out_img.shape == (2, 3, 32, 32)
    assert torch.allclose(out_img, F.avg_pool2d(images, 2), atol=1e-3)
    assert torch.equal(out_mask, blocks)


def test_progressive_side_keeps_the_views_of_the_full_side():
    """The same random crops and zooms as at the full side (the same affine maps to the cache), only
    rendered at fewer pixels."""
    aug = Augment(scale=(0.5, 2.0), rotate=10, shift=0.1)
    full = draw_augment(8, aug, torch.Generator().manual_seed(3), 48, 64)
    small = draw_augment(8, aug, torch.Generator().manual_seed(3), 48, 64, side=32)
    assert (full["crop"], small["crop"]) == (48, 32)
    assert torch.allclose(full["theta"], small["theta"], atol=1e-6) and torch.equal(full["flip"], small["flip"])
