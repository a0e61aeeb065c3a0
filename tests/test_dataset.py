"""Dataset validation: every fault names the id or file, tolerable quirks are tolerated."""
import numpy as np
import pytest
from PIL import Image

from hseg.cache import full_mask
from hseg.dataset import check_splits, load_image, load_mask, read_classes, read_ids
from hseg.errors import UserError
from hseg.prepare import build_cache
from tests.synthetic import make_dataset


def ids_of(root, split="train"):
    return read_ids(root / f"{split}_id.txt")


def cache(root, ids, size=32):
    return build_cache(root, ids, 7, size, keep_full_masks=True, workers=1, desc="train")


def test_clean_dataset_caches_resized_tensors_and_full_masks(dataset):
    ids = ids_of(dataset, "val")
    c = cache(dataset, ids)
    assert c["images"].shape == (3, 3, 32, 32) and c["masks"].shape == (3, 32, 32)
    original = np.asarray(Image.open(dataset / "masks" / f"{ids[1]}.png"))
    assert np.array_equal(full_mask(c, 1).numpy(), original)
    assert c["sizes"][1].tolist() == list(original.shape)


def test_npy_masks_of_the_original_download_are_read(tmp_path):
    png_root = make_dataset(tmp_path / "png", 2, 1, seed=3)
    npy_root = make_dataset(tmp_path / "npy", 2, 1, seed=3, npy_masks=True)
    ids = ids_of(png_root)
    assert np.array_equal(cache(png_root, ids)["masks"], cache(npy_root, ids)["masks"])


def test_id_files_tolerate_crlf_bom_blank_lines_and_spaces(tmp_path):
    f = tmp_path / "ids.txt"
    f.write_bytes(b"\xef\xbb\xbf 2008_000001 \r\n\r\n2008_000002\r\n   \r\n2008_000003")
    assert read_ids(f) == ["2008_000001", "2008_000002", "2008_000003"]


@pytest.mark.parametrize("content, message", [
    (b"a\r\nb\r\na", "duplicate id(s) ['a']"),
    (b"\r\n \r\n", "the split is empty"),
])
def test_bad_id_files(tmp_path, content, message):
    f = tmp_path / "ids.txt"
    f.write_bytes(content)
    with pytest.raises(UserError) as err:
        read_ids(f)
    assert message in str(err.value) and "ids.txt" in str(err.value)


def test_id_in_both_splits_is_named(tmp_path):
    with pytest.raises(UserError, match=r"1 id\(s\) are in both train_id.txt and val_id.txt, e.g. \['b'\]"):
        check_splits(["a", "b"], ["b", "c"], tmp_path / "train_id.txt", tmp_path / "val_id.txt")


def test_classes_must_be_0_to_n_minus_1(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_bytes(b"0: bg\r\n1: head\r\n3: torso")
    with pytest.raises(UserError, match=r"class ids must be 0..N-1 without gaps, got \[0, 1, 3\]"):
        read_classes(f)
    f.write_bytes(b"\xef\xbb\xbf0: bg\r\n\r\n1: head")
    assert read_classes(f) == ["bg", "head"]
    f.write_bytes(b"0 bg\r\n")
    with pytest.raises(UserError, match="not of the form"):
        read_classes(f)


def fault(root, image_id, kind):
    img = root / "JPEGImages" / f"{image_id}.jpg"
    mask = root / "masks" / f"{image_id}.png"
    if kind == "no image":
        img.unlink()
    elif kind == "no mask":
        mask.unlink()
    elif kind == "size mismatch":
        Image.open(mask).resize((10, 10)).save(mask)
    elif kind == "bad label":
        m = np.asarray(Image.open(mask)).copy()
        m[0, 0] = 9
        Image.fromarray(m).save(mask)
    elif kind == "truncated image":
        img.write_bytes(img.read_bytes()[:300])
    elif kind == "zero-byte image":
        img.write_bytes(b"")
    elif kind == "text as jpg":
        img.write_text("not an image")
    elif kind == "coloured RGB mask":
        m = np.asarray(Image.open(mask))
        Image.fromarray(np.stack([m, m * 2, m], -1).astype(np.uint8)).save(mask)


@pytest.mark.parametrize("kind, message", [
    ("no image", "image not found"),
    ("no mask", "no mask (looked for"),
    ("size mismatch", "is 10x10 but the image is"),
    ("bad label", "label(s) [9] outside classes.txt ids 0..6"),
    ("truncated image", "unreadable or truncated image"),
    ("zero-byte image", "unreadable or truncated image"),
    ("text as jpg", "unreadable or truncated image"),
    ("coloured RGB mask", "RGB mask with colours is ambiguous"),
])
def test_faults_name_the_id_and_the_problem(dataset, kind, message):
    ids = ids_of(dataset)
    fault(dataset, ids[2], kind)
    with pytest.raises(UserError) as err:
        cache(dataset, ids)
    text = str(err.value)
    assert message in text and ids[2] in text and "1 of 6 train item(s) failed" in text


def test_all_faulty_ids_are_listed_at_once(dataset):
    ids = ids_of(dataset)
    fault(dataset, ids[0], "no image")
    fault(dataset, ids[4], "bad label")
    with pytest.raises(UserError, match="2 of 6") as err:
        cache(dataset, ids)
    assert ids[0] in str(err.value) and ids[4] in str(err.value)


def test_palette_and_grey_rgb_masks_keep_their_class_ids(tmp_path):
    labels = np.array([[0, 1, 2], [4, 5, 6]], np.uint8)
    pal = Image.fromarray(labels, mode="L").convert("P")
    pal.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)])
    pal.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert np.array_equal(load_mask(tmp_path / "p.png"), labels)
    Image.fromarray(np.stack([labels] * 3, -1)).save(tmp_path / "rgb.png")
    assert np.array_equal(load_mask(tmp_path / "rgb.png"), labels)


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P"])
def test_non_rgb_photos_are_converted(tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 10, 3), dtype=np.uint8))
    path = tmp_path / "x.jpg"
    converted = rgb.convert(mode)
    converted.save(path, format="PNG" if mode in ("RGBA", "P") else "JPEG")  # a .jpg name either way
    out = load_image(path)
    assert out.shape == (8, 10, 3) and out.dtype == np.uint8


def test_pixel_counts_are_recorded_at_original_resolution(dataset):
    ids = ids_of(dataset, "val")
    counts = np.zeros(7, dtype=np.int64)
    for i in ids:
        counts += np.bincount(np.asarray(Image.open(dataset / "masks" / f"{i}.png")).ravel(), minlength=7)
    assert cache(dataset, ids)["pixel_counts"].tolist() == counts.tolist()


def test_prepare_twice_writes_byte_identical_caches(dataset, tmp_path):
    """torch.save to a path names the zip's inner folder after the (random) temporary file;
    the caches must not change when nothing that goes into them changed."""
    import hashlib

    from hseg.cache import save_cache
    digests = []
    for run, workers in (("a", 1), ("b", 2)):
        c = build_cache(dataset, ids_of(dataset), 7, 32, keep_full_masks=True, workers=workers, desc="train")
        save_cache(c, tmp_path / run / "train.pt")
        digests.append(hashlib.md5((tmp_path / run / "train.pt").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
