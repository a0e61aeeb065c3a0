"""hseg/augment.py: image and mask move together, crops and zooms, reproducibility, progressive sides."""
import pytest
import torch
import torch.nn.functional as F

from hseg.augment import PERSON_MARGIN, apply_augment, draw_augment, person_boxes
from hseg.settings.train import AugmentSettings
from hseg.tree import IGNORE


def settings(**changes) -> AugmentSettings:
    """train.augment as params.yaml would give it: flips only (the original study's), with ``changes``."""
    values = dict(hflip=True, scale=[1.0, 1.0], shift=0.0, rotate=0.0, brightness=0.0, contrast=0.0, person_crop=0.0)
    values.update({k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()})
    return AugmentSettings.model_validate(values)


def augment_batch(images, masks, cfg: AugmentSettings, gen: torch.Generator, crop: int = 0, side: int = 0,
                  boxes=None):
    """Augment a whole batch as one process does: draw_augment, then apply_augment to every row."""
    draws = draw_augment(images.shape[0], cfg, gen, crop, images.shape[-1], side, boxes)
    return apply_augment(images, masks, draws, torch.arange(images.shape[0]))


def coordinate_batch(n=4, size=64):
    """Images whose channels 0/1 hold 10 + x / 10 + y (0 only outside after a transform) and
    masks whose label is a function of the coordinates."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = torch.stack([10 + xs, 10 + ys, torch.full_like(xs, 128)]).float()
    mask = ((xs // 8 + ys // 8) % 7).to(torch.uint8)
    return image.expand(n, -1, -1, -1).clone(), mask.expand(n, -1, -1).clone()


@pytest.mark.parametrize("aug, crop", [
    (settings(hflip=True), 0),
    (settings(hflip=True, scale=(0.5, 2.0)), 32),
    (settings(hflip=True, scale=(0.7, 1.4), rotate=10, shift=0.1), 48),
    (settings(hflip=False, scale=(0.5, 0.5)), 64),
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
    _, cropped = augment_batch(images, masks, settings(scale=(1.0, 1.0)), torch.Generator().manual_seed(0), 32)
    assert not (cropped == IGNORE).any()
    _, zoomed_out = augment_batch(images, masks, settings(scale=(0.5, 0.5)), torch.Generator().manual_seed(0), 64)
    assert (zoomed_out == IGNORE).float().mean() > 0.5  # the image fills a quarter of the output


def test_augmentation_is_reproducible_from_the_generator():
    images, masks = coordinate_batch()
    aug = settings(scale=(0.5, 2.0), rotate=5, brightness=0.1, contrast=0.1)
    a = augment_batch(images, masks, aug, torch.Generator().manual_seed(7), 32)
    b = augment_batch(images, masks, aug, torch.Generator().manual_seed(7), 32)
    c = augment_batch(images, masks, aug, torch.Generator().manual_seed(8), 32)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_no_augmentation_is_the_identity():
    images, masks = coordinate_batch()
    out_img, out_mask = augment_batch(images, masks, settings(hflip=False), torch.Generator().manual_seed(0))
    assert torch.equal(out_img, images) and torch.equal(out_mask, masks)


def test_progressive_side_renders_whole_images_at_fewer_pixels():
    """Side 32 from a 64 px cache, no other augmentation: each output pixel centre falls between
    four input pixels, so bilinear sampling gives the mean of each 2x2 block (avg_pool2d), and a
    mask constant on 2x2 blocks comes out as every second pixel."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64) * 255
    blocks = torch.randint(0, 7, (2, 32, 32), dtype=torch.uint8)
    masks = blocks.repeat_interleave(2, 1).repeat_interleave(2, 2)
    out_img, out_mask = augment_batch(images, masks, settings(hflip=False), torch.Generator().manual_seed(0), 0, 32)
    assert out_img.shape == (2, 3, 32, 32)
    assert torch.allclose(out_img, F.avg_pool2d(images, 2), atol=1e-3)
    assert torch.equal(out_mask, blocks)


def test_progressive_side_keeps_the_views_of_the_full_side():
    """The same random crops and zooms as at the full side (the same affine maps to the cache), only
    rendered at fewer pixels."""
    aug = settings(scale=(0.5, 2.0), rotate=10, shift=0.1)
    full = draw_augment(8, aug, torch.Generator().manual_seed(3), 48, 64)
    small = draw_augment(8, aug, torch.Generator().manual_seed(3), 48, 64, side=32)
    assert (full["crop"], small["crop"]) == (48, 32)
    assert torch.allclose(full["theta"], small["theta"], atol=1e-6) and torch.equal(full["flip"], small["flip"])


def test_person_boxes_by_hand():
    masks = torch.zeros(3, 8, 8, dtype=torch.uint8)
    masks[0, 2:4, 5:8] = 3           # rows 2-3, columns 5-7
    masks[1, 0, 0] = IGNORE          # ignored pixels are not people: the whole image
    masks[2, 7, 1] = 1
    # pixel edges in [-1, 1]: column c spans [c/4 - 1, (c+1)/4 - 1]
    assert person_boxes(masks, background=0).tolist() == [[0.25, -0.5, 1.0, 0.0], [-1.0, -1.0, 1.0, 1.0],
                                                          [-0.75, 0.75, -0.5, 1.0]]


def person_batch(n=8, size=64):
    """Masks with one 8 x 8 person (label 1) at rows 40-47, columns 8-15; images hold each pixel's column in
    channel 0 and its row in channel 1 (+ 10)."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images = torch.stack([10 + xs, 10 + ys, torch.zeros_like(xs)]).float().expand(n, -1, -1, -1).clone()
    masks = torch.zeros(n, size, size, dtype=torch.uint8)
    masks[:, 40:48, 8:16] = 1
    return images, masks


@pytest.mark.parametrize("hflip", [False, True])
def test_person_views_magnify_the_box_and_keep_it_whole(hflip):
    """With person_crop 1 every view shows the whole 8 px person, magnified PERSON_MAX_ZOOM (2x) times: the
    box with its margin (9.6 px) is below the 32 px that the largest zoom shows of a 64 px image."""
    images, masks = person_batch()
    out_img, out_mask = augment_batch(images, masks, settings(hflip=hflip, person_crop=1.0),
                                      torch.Generator().manual_seed(0), boxes=person_boxes(masks, 0))
    person = out_mask == 1
    assert out_mask.shape == (8, 64, 64) and (out_mask != IGNORE).all()    # inside the image: nothing padded
    assert person.flatten(1).sum(1).tolist() == [16 * 16] * 8               # 2x per side, none cut off
    # the pixels shown are the person's own, columns 8-15 and rows 40-47 of the input (mirrored or not: a
    # mirrored row's box is mirrored alike, else its view would miss the person)
    cols, rows = out_img[:, 0][person] - 10, out_img[:, 1][person] - 10
    assert rows.min() >= 39.5 and rows.max() <= 47.5 and cols.min() >= 7.5 and cols.max() <= 15.5


def test_person_views_of_a_large_person_show_the_box_with_its_margin():
    """A 40 px person: the view's half-extent is the box's (20 px) times PERSON_MARGIN, 24 px of 32."""
    images, masks = person_batch(n=4)
    masks[:] = 0
    masks[:, 10:50, 12:52] = 2
    draws = draw_augment(4, settings(hflip=False, person_crop=1.0), torch.Generator().manual_seed(1), 0, 64,
                         boxes=person_boxes(masks, 0))
    half = 20 / 32 * PERSON_MARGIN
    assert torch.allclose(draws["theta"][:, 0, 0], torch.full((4,), half))
    assert torch.allclose(draws["theta"][:, 1, 1], torch.full((4,), half))
    # the box (x in [-0.625, 0.625], y in [-0.6875, 0.5625]) stays inside each view
    centre_x, centre_y = draws["theta"][:, 0, 2], draws["theta"][:, 1, 2]
    assert ((centre_x - half <= -0.625) & (centre_x + half >= 0.625)).all()
    assert ((centre_y - half <= -0.6875) & (centre_y + half >= 0.5625)).all()


def test_person_crop_share_and_no_change_to_the_other_views():
    """person_crop p: a share p of the views (drawn per image) is replaced; the others are the views the
    recipe without person views draws, the same random numbers first."""
    images, masks = person_batch(n=400)
    boxes = person_boxes(masks, 0)
    plain = draw_augment(400, settings(scale=[0.5, 2.0]), torch.Generator().manual_seed(3), 32, 64)
    mixed = draw_augment(400, settings(scale=[0.5, 2.0], person_crop=0.25), torch.Generator().manual_seed(3), 32,
                         64, boxes=boxes)
    kept = (mixed["theta"] == plain["theta"]).flatten(1).all(1)
    assert torch.equal(mixed["flip"], plain["flip"])
    assert 0.65 < kept.float().mean() < 0.85          # 75 % expected; 400 draws: sd 2.2 %
    with pytest.raises(ValueError, match="person boxes"):
        draw_augment(4, settings(person_crop=0.5), torch.Generator(), 0, 64)
