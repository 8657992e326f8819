"""nfdeploy.data: preprocessing, loaders (on tiny data made here), cache, synthetic set."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nfdeploy.data.imagefolder as imagefolder_mod
from nfdeploy.data import (
    CIFAR10_CLASSES,
    PRESETS,
    SYNTHETIC_CLASSES,
    Dataset,
    Preprocess,
    default_cache_dir,
    detect_format,
    generate_synthetic,
    iter_batches,
    load_dataset,
)
from nfdeploy.errors import NfdeployError

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers
def rand_images(n: int, h: int = 8, w: int = 8, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def make_folder(
    root: Path,
    classes: list[str],
    per_class: int = 3,
    *,
    ext: str = "png",
    size: int = 8,
    mode: str = "RGB",
    seed: int = 0,
) -> dict[str, list[np.ndarray]]:
    """Write root/<class>/<i>.<ext>; return the pixel arrays written (PNG is lossless)."""
    rng = np.random.default_rng(seed)
    written: dict[str, list[np.ndarray]] = {}
    for cls in classes:
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        written[cls] = []
        for i in range(per_class):
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            arr = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(arr, mode).save(d / f"{i:03d}.{ext}")
            written[cls].append(arr)
    return written


class DecodeCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = imagefolder_mod._decode_image

        def counting(path: str | Path) -> np.ndarray:
            self.calls += 1
            return real(path)

        monkeypatch.setattr(imagefolder_mod, "_decode_image", counting)


# --------------------------------------------------------------------------- Preprocess
def test_preprocess_apply_unit_and_layout() -> None:
    x = rand_images(4, 6, 5)
    out = PRESETS["unit"].__class__(height=6, width=5).apply(x)
    assert out.dtype == np.float32 and out.shape == (4, 3, 6, 5)
    np.testing.assert_allclose(out, x.transpose(0, 3, 1, 2) / 255.0, rtol=0, atol=1e-6)


def test_preprocess_apply_mean_std_per_channel() -> None:
    pre = Preprocess.parse("cifar10")
    x = rand_images(3, 32, 32)
    out = pre.apply(x)
    mean = np.array([0.4914, 0.4822, 0.4465])[None, :, None, None]
    std = np.array([0.247, 0.243, 0.261])[None, :, None, None]
    expect = (x.transpose(0, 3, 1, 2) / 255.0 - mean) / std
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)
    lo, hi = pre.valid_range()
    assert lo.shape == hi.shape == (3,)
    np.testing.assert_allclose(lo, -mean.ravel() / std.ravel(), rtol=1e-6)
    np.testing.assert_allclose(hi, (1 - mean.ravel()) / std.ravel(), rtol=1e-6)
    assert np.all(out >= lo[None, :, None, None] - 1e-5)
    assert np.all(out <= hi[None, :, None, None] + 1e-5)


def test_preprocess_pm1_range_and_extremes() -> None:
    pre = Preprocess.parse("pm1")
    lo, hi = pre.valid_range()
    np.testing.assert_allclose(lo, [-1, -1, -1])
    np.testing.assert_allclose(hi, [1, 1, 1])
    x = np.zeros((1, 32, 32, 3), np.uint8)
    x[..., 1] = 255
    out = pre.apply(x)
    assert out[0, 0].max() == -1 and out[0, 1].min() == 1


def test_preprocess_channel_conversion_and_resize() -> None:
    gray = rand_images(2, 8, 8, 1)
    rgb = Preprocess(channels=3, height=8, width=8).apply(gray)
    assert rgb.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(rgb[:, 0], rgb[:, 2])
    # (N,H,W) without a channel axis is gray too.
    np.testing.assert_array_equal(Preprocess(height=8, width=8).apply(gray[..., 0]), rgb)
    color = rand_images(2, 8, 8, 3)
    g = Preprocess(channels=1, height=8, width=8).apply(color)
    assert g.shape == (2, 1, 8, 8)
    luma = color.astype(np.float64) @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(g[:, 0] * 255, np.rint(luma), atol=1e-3)
    big = Preprocess(channels=3, height=16, width=12).apply(color)
    assert big.shape == (2, 3, 16, 12)
    const = np.full((1, 8, 8, 3), 77, np.uint8)
    np.testing.assert_allclose(
        Preprocess(height=4, width=4).apply(const), 77 / 255, rtol=0, atol=1e-6
    )


def test_preprocess_rejects_float_pixels() -> None:
    with pytest.raises(NfdeployError, match="uint8"):
        Preprocess().apply(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(NfdeployError, match="shape"):
        Preprocess().apply(np.zeros((1, 32, 32, 4), np.uint8))


def test_preprocess_dict_and_text_round_trip() -> None:
    for pre in [*PRESETS.values(), Preprocess(3, 24, 40, 1 / 256, (0.1, 0.2, 0.3), (2.0,))]:
        assert Preprocess.from_dict(pre.to_dict()) == pre
        assert Preprocess.parse(pre.to_text()) == pre
        assert Preprocess.parse(str(pre)) == pre
    import json

    pre = PRESETS["cifar10"]
    assert Preprocess.parse(json.dumps(pre.to_dict())) == pre
    assert json.loads(json.dumps(pre.to_dict())) == pre.to_dict()


def test_preprocess_parse_forms() -> None:
    pre = Preprocess.parse(
        "size=32x32,channels=3,mean=0.4914/0.4822/0.4465,std=0.247/0.243/0.261,scale=1/255"
    )
    assert pre == PRESETS["cifar10"]
    assert Preprocess.parse("unit") == Preprocess()
    assert Preprocess.parse("pm1").mean == (0.5,) and Preprocess.parse("pm1").std == (0.5,)
    mn = Preprocess.parse("MNIST")
    assert (mn.channels, mn.height, mn.width) == (1, 28, 28)
    over = Preprocess.parse("cifar10, size=64x48")
    assert (over.height, over.width, over.mean) == (64, 48, PRESETS["cifar10"].mean)
    assert Preprocess.parse("size=28,channels=1,scale=0.5").scale == 0.5
    assert Preprocess.parse("preset=pm1,height=20").height == 20


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("size=32y32", "size"),
        ("mean=a/b/c", "mean"),
        ("std=0.5/0/0.5", "std"),
        ("scale=1/0", "scale"),
        ("channels=2", "channels"),
        ("channels=x", "channels"),
        ("mean=0.1/0.2", "mean"),
        ("bogus=1", "bogus"),
        ("nosuchpreset", "preset"),
        ("cifar10,channels=1", "mean"),
        ("size=32x32,pm1", "pm1"),
        ("", "preset"),
    ],
)
def test_preprocess_parse_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(NfdeployError, match=field):
        Preprocess.parse(text)


def test_preprocess_from_dict_rejects_unknown() -> None:
    with pytest.raises(NfdeployError, match="colour"):
        Preprocess.from_dict({"channels": 3, "colour": 1})


# --------------------------------------------------------------------------- Dataset
def test_dataset_validation() -> None:
    imgs = rand_images(4)
    with pytest.raises(NfdeployError, match="4 images but 3 labels"):
        Dataset(imgs, np.zeros(3, np.int64), ["a"], "t")
    with pytest.raises(NfdeployError, match="uint8"):
        Dataset(imgs.astype(np.float32), np.zeros(4, np.int64), ["a"], "t")
    with pytest.raises(NfdeployError, match="class names"):
        Dataset(imgs, np.array([0, 1, 2, 5]), ["a", "b"], "t")
    ds = Dataset(imgs[..., 0], np.array([0, 1, 0, 1], np.int32), ["a", "b"], "t")
    assert ds.images.shape == (4, 8, 8, 1) and ds.labels.dtype == np.int64 and len(ds) == 4


def test_subset_deterministic_stratified_ordered() -> None:
    labels = np.repeat(np.arange(5), 40)
    ds = Dataset(rand_images(200, 2, 2), labels, list("abcde"), "t")
    a, b = ds.subset(50, seed=3), ds.subset(50, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.class_counts(), [10] * 5)
    c = ds.subset(50, seed=4)
    assert not np.array_equal(a.images, c.images)
    assert ds.subset(500, seed=0) is ds
    # Order is preserved (labels were sorted, so the subset's are too).
    assert np.all(np.diff(a.labels) >= 0)
    # Unbalanced classes get proportional shares.
    unb = Dataset(rand_images(100, 2, 2), np.array([0] * 80 + [1] * 20), ["x", "y"], "t")
    np.testing.assert_array_equal(unb.subset(10, seed=0).class_counts(), [8, 2])
    with pytest.raises(NfdeployError):
        ds.subset(0, seed=0)


def test_iter_batches() -> None:
    ds = Dataset(rand_images(10, 4, 4), np.arange(10) % 2, ["a", "b"], "t")
    pre = Preprocess(height=4, width=4)
    batches = list(iter_batches(ds, pre, 4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x = np.concatenate([b for b, _ in batches])
    np.testing.assert_array_equal(x, pre.apply(ds.images))
    assert all(b.dtype == np.float32 and y.dtype == np.int64 for b, y in batches)
    with pytest.raises(NfdeployError):
        next(iter_batches(ds, pre, 0))


# --------------------------------------------------------------------------- image folders
def test_imagefolder_flat_png_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = make_folder(tmp_path / "d", ["zebra", "apple", "mango"], per_class=2)
    counter = DecodeCounter(monkeypatch)
    ds = load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c", progress=False)
    assert ds.class_names == ["apple", "mango", "zebra"]
    assert ds.images.shape == (6, 8, 8, 3) and counter.calls == 6
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(ds.images[4], written["zebra"][0])
    assert detect_format(tmp_path / "d") == "imagefolder"


def test_imagefolder_splits_and_prefix(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_folder(root / "train", ["a", "b", "c"], per_class=2)
    make_folder(root / "test", ["a", "c"], per_class=1, ext="jpg", seed=1)  # no 'b' in test
    te = load_dataset(f"imagefolder:{root}", split="test", cache_dir=tmp_path / "c", progress=False)
    tr = load_dataset(str(root), split="train", cache_dir=tmp_path / "c", progress=False)
    assert len(tr) == 6 and len(te) == 2
    assert te.class_names == tr.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(te.labels, [0, 2])  # 'c' keeps label 2
    with pytest.raises(NfdeployError, match="'val'"):
        load_dataset(str(root), split="val", cache_dir=tmp_path / "c", progress=False)


def test_imagefolder_cifar10_class_order(tmp_path: Path) -> None:
    # Sorted folder order equals the canonical CIFAR-10 label order.
    assert sorted(CIFAR10_CLASSES) == list(CIFAR10_CLASSES)
    names = list(reversed(CIFAR10_CLASSES))  # created in reverse order
    make_folder(tmp_path / "c10", names, per_class=1)
    ds = load_dataset(str(tmp_path / "c10"), cache_dir=tmp_path / "c", progress=False)
    assert ds.class_names == list(CIFAR10_CLASSES)
    np.testing.assert_array_equal(ds.labels, np.arange(10))


def test_imagefolder_gray_mixed_and_sizes(tmp_path: Path) -> None:
    make_folder(tmp_path / "g", ["a", "b"], per_class=2, mode="L")
    g = load_dataset(str(tmp_path / "g"), cache_dir=tmp_path / "c", progress=False)
    assert g.images.shape == (4, 8, 8, 1)
    make_folder(tmp_path / "m", ["a"], per_class=2, mode="L")
    make_folder(tmp_path / "m", ["b"], per_class=1, mode="RGB")
    Image.fromarray(rand_images(1, 10, 10)[0]).save(tmp_path / "m" / "b" / "big.bmp")
    m = load_dataset(str(tmp_path / "m"), cache_dir=tmp_path / "c", progress=False)
    assert m.images.shape == (4, 8, 8, 3)
    assert "resized" in m.source
    # Gray images were repeated into RGB.
    np.testing.assert_array_equal(m.images[0, ..., 0], m.images[0, ..., 2])


def test_imagefolder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(NfdeployError, match="no images"):
        load_dataset(str(tmp_path / "empty"), cache_dir=tmp_path / "c")
    make_folder(tmp_path / "bad", ["a"], per_class=2)
    (tmp_path / "bad" / "a" / "zz.png").write_bytes(b"not a png at all")
    with pytest.raises(NfdeployError, match=r"zz\.png.*cannot decode"):
        load_dataset(str(tmp_path / "bad"), cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(NfdeployError, match="no such file"):
        load_dataset(str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(NfdeployError, match=r"not an \.npz"):
        load_dataset(str(tmp_path / "notes.txt"))
    with pytest.raises(NfdeployError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")


def test_decode_cache_hit_and_invalidation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "d"
    make_folder(root, ["a", "b"], per_class=3, ext="jpg")
    cache = tmp_path / "cache"
    counter = DecodeCounter(monkeypatch)
    first = load_dataset(str(root), cache_dir=cache, progress=False)
    assert counter.calls == 6
    entries = list(cache.iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".npz"  # no temp files left behind
    second = load_dataset(str(root), cache_dir=cache, progress=False)
    assert counter.calls == 6  # served from the cache
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.class_names == second.class_names and first.source == second.source
    # Adding a file changes the fingerprint: decode again.
    Image.fromarray(rand_images(1)[0]).save(root / "b" / "new.png")
    third = load_dataset(str(root), cache_dir=cache, progress=False)
    assert counter.calls == 6 + 7 and len(third) == 7
    # Changing a file's mtime does too.
    f = root / "a" / "000.jpg"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    load_dataset(str(root), cache_dir=cache, progress=False)
    assert counter.calls == 6 + 7 + 7
    # A corrupt cache entry is ignored and rewritten.
    for e in cache.iterdir():
        e.write_bytes(b"garbage")
    again = load_dataset(str(root), cache_dir=cache, progress=False)
    assert counter.calls == 6 + 7 + 7 + 7
    np.testing.assert_array_equal(again.images, third.images)


def test_cache_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NFDEPLOY_CACHE", str(tmp_path / "envcache"))
    assert default_cache_dir() == tmp_path / "envcache" / "data"
    make_folder(tmp_path / "d", ["a"], per_class=1)
    load_dataset(str(tmp_path / "d"), progress=False)
    assert len(list((tmp_path / "envcache" / "data").glob("*.npz"))) == 1
    monkeypatch.setenv("NFDEPLOY_CACHE", "off")
    assert default_cache_dir() is None
    monkeypatch.delenv("NFDEPLOY_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "nfdeploy" / "data"


def test_progress_bar_silent_when_not_tty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_folder(tmp_path / "d", ["a"], per_class=2)
    load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c", progress=True)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- CIFAR
def write_cifar10(root: Path, *, bytes_keys: bool, n: int = 6) -> dict[str, np.ndarray]:
    root.mkdir(parents=True)

    def k(s: str) -> str | bytes:
        return s.encode() if bytes_keys else s

    rng = np.random.default_rng(1)
    out = {}
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, n).tolist())
        with (root / name).open("wb") as f:
            pickle.dump({k("data"): data, k("labels"): labels, k("batch_label"): b"x"}, f, 2)
        out[name] = data
    names = [c.encode() if bytes_keys else c for c in CIFAR10_CLASSES]
    with (root / "batches.meta").open("wb") as f:
        pickle.dump({k("label_names"): names, k("num_vis"): 3072}, f, 2)
    return out


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar10_batches(tmp_path: Path, bytes_keys: bool) -> None:
    raw = write_cifar10(tmp_path / "cifar-10-batches-py", bytes_keys=bytes_keys)
    # Both the batches folder and its parent are recognised.
    for spec in (str(tmp_path / "cifar-10-batches-py"), str(tmp_path), f"cifar:{tmp_path}"):
        te = load_dataset(spec, split="test")
        assert te.images.shape == (6, 32, 32, 3) and te.class_names == list(CIFAR10_CLASSES)
    # Row layout: 1024 red, then green, then blue, each row-major.
    img0 = raw["test_batch"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_array_equal(te.images[0], img0)
    tr = load_dataset(str(tmp_path), split="train")
    assert len(tr) == 12
    np.testing.assert_array_equal(
        tr.images[6], raw["data_batch_2"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    )


def test_cifar100_batches(tmp_path: Path) -> None:
    root = tmp_path / "c100"
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("test", 4)):
        with (root / split).open("wb") as f:
            pickle.dump(
                {
                    "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                    "fine_labels": [99, 0, 1, 2, 3][:n],
                    "coarse_labels": [0] * n,
                },
                f,
            )
    with (root / "meta").open("wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)
    ds = load_dataset(str(root), split="train")
    assert len(ds) == 5 and len(ds.class_names) == 100 and ds.labels[0] == 99
    assert len(load_dataset(str(root))) == 4


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_cifar_rejects_code_in_pickles(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "c", bytes_keys=False)
    with (tmp_path / "c" / "test_batch").open("wb") as f:
        pickle.dump({"data": _Evil(), "labels": []}, f)
    with pytest.raises(NfdeployError, match="not allowed"):
        load_dataset(str(tmp_path / "c"))


def test_cifar_corrupt_batch(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "c", bytes_keys=False)
    (tmp_path / "c" / "test_batch").write_bytes(b"\x80\x02truncated")
    with pytest.raises(NfdeployError, match="test_batch"):
        load_dataset(str(tmp_path / "c"))
    with (tmp_path / "c" / "test_batch").open("wb") as f:
        pickle.dump({"data": np.zeros((3, 3072), np.uint8), "labels": [1, 2]}, f)
    with pytest.raises(NfdeployError, match="3 images but 2 labels"):
        load_dataset(str(tmp_path / "c"))


# --------------------------------------------------------------------------- IDX
def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_idx(root: Path, prefix: str, n: int, *, gz: bool, seed: int = 0) -> np.ndarray:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    for name, arr in (
        (f"{prefix}-images-idx3-ubyte", imgs),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        data = idx_bytes(arr)
        if gz:
            (root / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)
    return imgs


@pytest.mark.parametrize("gz", [False, True])
def test_idx_mnist(tmp_path: Path, gz: bool) -> None:
    tr = write_idx(tmp_path / "mnist", "train", 12, gz=gz)
    te = write_idx(tmp_path / "mnist", "t10k", 5, gz=gz, seed=1)
    assert detect_format(tmp_path / "mnist") == "idx"
    a = load_dataset(str(tmp_path / "mnist"), split="train")
    b = load_dataset(f"idx:{tmp_path / 'mnist'}")
    assert a.images.shape == (12, 28, 28, 1) and b.images.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(a.images[..., 0], tr)
    np.testing.assert_array_equal(b.images[..., 0], te)
    np.testing.assert_array_equal(b.labels, [0, 1, 2, 3, 4])
    assert a.class_names == [str(i) for i in range(10)]
    out = Preprocess.parse("mnist").apply(b.images)
    assert out.shape == (5, 1, 28, 28)


def test_idx_fashion_names_and_raw_subdir(tmp_path: Path) -> None:
    write_idx(tmp_path / "FashionMNIST" / "raw", "t10k", 3, gz=True)
    ds = load_dataset(str(tmp_path / "FashionMNIST"))
    assert ds.class_names[0] == "T-shirt/top" and len(ds.class_names) == 10


def test_idx_errors(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write_idx(root, "t10k", 5, gz=False)
    (root / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(NfdeployError, match="5 images but"):
        load_dataset(str(root))
    (root / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, np.uint8))[:-2])
    with pytest.raises(NfdeployError, match="truncated"):
        load_dataset(str(root))
    (root / "t10k-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(NfdeployError, match="magic"):
        load_dataset(str(root))
    with pytest.raises(NfdeployError, match="no train IDX"):
        load_dataset(f"idx:{root}", split="train")


# --------------------------------------------------------------------------- npz
def test_npz_variants(tmp_path: Path) -> None:
    x = rand_images(6, 8, 8)
    y = np.arange(6) % 3
    np.savez(tmp_path / "a.npz", x=x, y=y)
    a = load_dataset(str(tmp_path / "a.npz"))
    np.testing.assert_array_equal(a.images, x)
    assert a.class_names == ["0", "1", "2"]
    # Float in [0, 1], channels-first, one-hot labels, explicit names.
    np.savez(
        tmp_path / "b.npz",
        x=(x.transpose(0, 3, 1, 2) / 255.0).astype(np.float32),
        y=np.eye(3)[y],
        class_names=np.array(["r", "g", "b"]),
    )
    b = load_dataset(f"npz:{tmp_path / 'b.npz'}")
    np.testing.assert_array_equal(b.images, x)
    np.testing.assert_array_equal(b.labels, y)
    assert b.class_names == ["r", "g", "b"]
    # Gray (N,H,W) and Keras-style split keys.
    np.savez(tmp_path / "c.npz", x_train=x[..., 0], y_train=y, x_test=x[:2, ..., 0], y_test=y[:2])
    assert load_dataset(str(tmp_path / "c.npz"), split="train").images.shape == (6, 8, 8, 1)
    assert len(load_dataset(str(tmp_path / "c.npz"))) == 2


def test_npz_errors(tmp_path: Path) -> None:
    x = rand_images(4)
    np.savez(tmp_path / "k.npz", images=x, labels=np.zeros(4))
    with pytest.raises(NfdeployError, match=r"needs arrays 'x' and 'y'.*images, labels"):
        load_dataset(str(tmp_path / "k.npz"))
    np.savez(tmp_path / "m.npz", x=x, y=np.zeros(3, np.int64))
    with pytest.raises(NfdeployError, match="4 images but 'y' has 3"):
        load_dataset(str(tmp_path / "m.npz"))
    np.savez(tmp_path / "f.npz", x=x.astype(np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(NfdeployError, match=r"\[0, 1\]"):
        load_dataset(str(tmp_path / "f.npz"))
    (tmp_path / "z.npz").write_bytes(b"junk")
    with pytest.raises(NfdeployError, match="not a readable"):
        load_dataset(str(tmp_path / "z.npz"))


# --------------------------------------------------------------------------- synthetic
def test_synthetic_default_and_sizes() -> None:
    te = load_dataset("synthetic")
    assert te.images.shape == (2000, 32, 32, 3) and te.images.dtype == np.uint8
    assert te.class_names == list(SYNTHETIC_CLASSES) and len(set(SYNTHETIC_CLASSES)) == 10
    np.testing.assert_array_equal(te.class_counts(), [200] * 10)
    small = load_dataset("synthetic:500", split="train")
    assert len(small) == 500 and len(load_dataset("synthetic:500")) == 100
    lim = load_dataset("synthetic:500", split="train", limit=50, seed=1)
    assert len(lim) == 50 and np.all(lim.class_counts() == 5)


def test_synthetic_deterministic_and_disjoint() -> None:
    a = load_dataset("synthetic:300", split="train")
    b = load_dataset("synthetic:300", split="train")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    a.images[0] = 0  # a copy: mutating it does not poison the next load
    c = load_dataset("synthetic:300", split="train")
    np.testing.assert_array_equal(c.images[1:], b.images[1:])
    assert c.images[0].any()
    te = load_dataset("synthetic:300", split="test")
    flat_tr = {img.tobytes() for img in b.images}
    assert not any(img.tobytes() in flat_tr for img in te.images)
    other = load_dataset("synthetic:300:7", split="train")
    assert not np.array_equal(other.images, b.images)
    # Chunked rendering does not change the result of the prefix.
    x1, y1 = generate_synthetic(40, 123)
    x2, y2 = generate_synthetic(40, 123)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


def test_synthetic_not_trivial() -> None:
    """Neither the mean colour nor a nearest-class-mean template on pixels tells classes
    apart well: the class is in the shape."""
    tr = load_dataset("synthetic:1000", split="train")
    te = load_dataset("synthetic:1000", split="test")
    x = tr.images.reshape(len(tr), -1).astype(np.float32)
    xt = te.images.reshape(len(te), -1).astype(np.float32)
    centroids = np.stack([x[tr.labels == k].mean(0) for k in range(10)])
    d = ((xt[:, None, :] - centroids[None]) ** 2).sum(-1)
    acc = float((d.argmin(1) == te.labels).mean())
    assert acc < 0.3
    # Images are varied: distinct pixel statistics, not one template per class.
    assert tr.images.std() > 40


def test_synthetic_spec_errors() -> None:
    for spec in ("synthetic:abc", "synthetic:0", "synthetic:1:2:3"):
        with pytest.raises(NfdeployError, match="synthetic"):
            load_dataset(spec)
    with pytest.raises(NfdeployError, match="'val'"):
        load_dataset("synthetic:100", split="val")
    with pytest.raises(NfdeployError, match="limit"):
        load_dataset("synthetic:100", limit=0)


def test_empty_spec() -> None:
    with pytest.raises(NfdeployError, match="empty"):
        load_dataset("  ")


# --------------------------------------------------------------------------- no torch
def test_package_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import nfdeploy.data as d\n"
        "ds = d.load_dataset('synthetic:50', split='train')\n"
        "x = next(d.iter_batches(ds, d.Preprocess.parse('pm1'), 8))\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


def test_formats_are_the_registered_readers(tmp_path: Path) -> None:
    """FORMATS, detection and the 'name:' prefixes all come from the one READERS table."""
    from nfdeploy.data import FORMATS
    from nfdeploy.data.readers import READERS, LoadRequest

    assert (*(r.name for r in READERS), "synthetic") == FORMATS
    make_folder(tmp_path / "folder", ["a", "b"])
    np.savez(tmp_path / "d.npz", x=rand_images(4), y=np.array([0, 1, 0, 1]))
    samples = {"imagefolder": tmp_path / "folder", "npz": tmp_path / "d.npz"}
    for name, path in samples.items():
        accepted = [r.name for r in READERS if r.detect(path)]
        assert accepted == [name]
        reader = next(r for r in READERS if r.name == name)
        request = LoadRequest(split="test", cache_dir=tmp_path / "cache", progress=False)
        direct = reader.load(path, request)
        via_prefix = load_dataset(f"{name}:{path}", cache_dir=tmp_path / "cache", progress=False)
        assert np.array_equal(direct.images, via_prefix.images)
