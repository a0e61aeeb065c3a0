"""The dev split: held out of train by a hash of each id, deterministic and disjoint."""
import hashlib

import pytest

from hseg.dataset import in_dev_split, split_dev

IDS = [f"2009_{i:06d}" for i in range(2000)]


def test_dev_ids_are_those_whose_hash_falls_below_the_fraction():
    for image_id in IDS[:50]:
        share = int(hashlib.sha256(image_id.encode()).hexdigest()[:16], 16) / 2 ** 64   # written out again
        assert in_dev_split(image_id, 0.1) == (share < 0.1)


def test_split_is_disjoint_complete_and_near_the_fraction():
    train, dev = split_dev(IDS, 0.15)
    assert not set(train) & set(dev) and sorted(train + dev) == sorted(IDS)
    assert 0.12 < len(dev) / len(IDS) < 0.18
    assert train == [i for i in IDS if i in set(train)]          # file order kept


def test_split_depends_on_each_id_alone():
    _, dev = split_dev(IDS, 0.1)
    _, dev_reversed = split_dev(IDS[::-1], 0.1)
    _, dev_subset = split_dev(IDS[:1000], 0.1)
    assert sorted(dev_reversed) == sorted(dev)
    assert dev_subset == [i for i in dev if i in set(IDS[:1000])]


def test_no_fraction_holds_out_nothing_and_val_never_enters():
    assert split_dev(IDS, 0.0) == (IDS, [])
    val = [f"2010_{i:06d}" for i in range(100)]
    train, dev = split_dev(IDS, 0.5)
    assert not (set(train) | set(dev)) & set(val)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2])
def test_a_larger_fraction_only_adds_ids(fraction):
    assert set(split_dev(IDS, fraction)[1]) <= set(split_dev(IDS, fraction + 0.05)[1])
