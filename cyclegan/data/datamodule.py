"""``UnpairedDataModule``: two image domains A and B from any supported layout.

Splits per ``source``:

- ``berkeley``: fit on ``trainA``/``trainB``; test on ``testA``/``testB``; validate on a fixed
  ``val_size`` subset of the test split (deterministic, spread over it).
- ``kaggle``, ``tfrecord``, ``sample``, and ``folders`` without ``test_dir_a``/``test_dir_b``:
  there is no test split, so a deterministic hold-out of ``val_size`` images per domain
  (chosen by a hash of each image's relative path, at most half a domain) is used for both
  validation and test, and training uses the rest.

``dir_a``/``dir_b`` replace the training folders of any source (``folders`` requires them);
``test_dir_a``/``test_dir_b`` give explicit test folders. Relative folders are taken from
``root`` when it is set, else from the working directory.

Data is looked for in :meth:`setup` (or the first :meth:`files` / :meth:`domain_dataset`
call), not in ``__init__``, so configs can be instantiated before the data exists;
``prepare_data`` downloads Berkeley sets when ``download=True``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch

from .datasets import DomainDataset, PairedByIndexDataset, UnpairedDataset
from .layouts import DOMAINS, LAYOUTS, Dataset, layout_missing
from .sources import ImageList, holdout, select_subset
from .transforms import build_transforms
from .workers import DataLoader, kill_leftover_workers_at_exit, warn_if_more_workers_than_cores, worker_init

log = logging.getLogger(__name__)

__all__ = ["UnpairedDataModule"]

SPLITS = ("train", "val", "test")


def _abs(path, base: Path | None = None) -> Path | None:
    """Absolute path; relative ones against ``base`` or Hydra's launch directory / cwd."""
    if path is None or str(path) == "":
        return None
    p = Path(str(path)).expanduser()
    if p.is_absolute():
        return p
    if base is not None:
        return base / p
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.utils import get_original_cwd

        if HydraConfig.initialized():
            return Path(get_original_cwd()) / p
    except Exception:  # pragma: no cover
        pass
    return p.absolute()


class UnpairedDataModule(pl.LightningDataModule):
    """Unpaired two-domain image data for CycleGAN-style training.

    Batches (train/val/test): ``{"A": float32[N,3,H,W] in [-1,1], "B": ..., "A_path": [str], "B_path": [str]}``.
    Training pairs ``A[i % |A|]`` with a random B; val/test pair by index (modulo the shorter
    domain). See the module docstring for the splits of each ``source``.
    """

    def __init__(
        self,
        name: str = "custom",
        source: str = "berkeley",
        root: str | None = None,
        dir_a: str | None = None,
        dir_b: str | None = None,
        download: bool = False,
        image_size: int = 256,
        load_size: int = 286,
        batch_size: int = 1,
        num_workers: int = 4,
        epoch_length: int | None = None,
        flip: bool = True,
        rotate: float = 0,
        color_jitter: float = 0.0,
        serial_batches: bool = False,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        val_size: int = 16,
        seed: int | None = None,
        test_dir_a: str | None = None,
        test_dir_b: str | None = None,
        eval_batch_size: int | None = None,
        cache_images: bool = False,
        min_size_policy: str = "upscale",
        bad_image_policy: str = "skip",
        max_train_images: int | None = None,
        follow_links: bool = False,
        eval_size: int | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        source = str(source).lower()
        if source not in LAYOUTS:
            raise ValueError(f"data.source must be one of {', '.join(LAYOUTS)}; got {source!r}")
        layout = LAYOUTS[source]
        if int(load_size) < int(image_size):
            raise ValueError(
                f"data.load_size ({load_size}) must be >= data.image_size ({image_size}): training images are "
                "resized to load_size and then randomly cropped to image_size"
            )
        if int(image_size) <= 0 or int(batch_size) <= 0:
            raise ValueError(f"data.image_size ({image_size}) and data.batch_size ({batch_size}) must be positive")
        if epoch_length is not None and int(epoch_length) <= 0:
            raise ValueError(f"data.epoch_length must be positive or null, got {epoch_length}")
        if eval_size is not None and int(eval_size) <= 0:
            raise ValueError(f"data.eval_size must be positive or null (= data.image_size), got {eval_size}")
        if val_size is not None and int(val_size) < 0:
            raise ValueError(f"data.val_size must be >= 0, got {val_size}")
        if layout.needs_dirs and (dir_a is None or dir_b is None):
            raise ValueError(f"data.source={source} needs data.dir_a and data.dir_b (one folder of images per domain)")
        if layout.needs_root and root is None and (dir_a is None or dir_b is None):
            raise ValueError(f"data.source={source} needs data.root (the dataset folder)")

        self.name = str(name)
        self.source = source
        self.layout = layout
        self.root = _abs(root)
        self.dir_a, self.dir_b = _abs(dir_a, self.root), _abs(dir_b, self.root)
        self.test_dir_a, self.test_dir_b = _abs(test_dir_a, self.root), _abs(test_dir_b, self.root)
        self.download = bool(download)
        self.image_size = int(image_size)
        self.load_size = int(load_size)
        # The size validation and test images are resized to. It defaults to the training crop; a run that
        # crops at the images' own scale (load_size = the images' size) validates at that scale with
        # eval_size = load_size, so val/kid and val/target_rate see what evaluate.py will see.
        self.eval_size = int(eval_size) if eval_size else self.image_size
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size) if eval_batch_size else self.batch_size
        self.num_workers = int(num_workers)
        self.epoch_length = int(epoch_length) if epoch_length else None
        self.flip = bool(flip)
        self.rotate = float(rotate or 0)
        self.color_jitter = float(color_jitter or 0)
        self.serial_batches = bool(serial_batches)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.val_size = None if val_size is None else int(val_size)
        self.seed = seed
        if max_train_images is not None and int(max_train_images) <= 0:
            raise ValueError(f"data.max_train_images must be positive or null, got {max_train_images}")
        # Some source projects train on a fixed subset (e.g. 300 + 300 Kaggle images).
        self.max_train_images = None if max_train_images is None else int(max_train_images)
        self.cache_images = bool(cache_images)
        self.follow_links = bool(follow_links)  # links to folders outside a domain's folder (layouts.py)
        if min_size_policy not in ("upscale", "reject") or bad_image_policy not in ("skip", "raise"):
            raise ValueError(f"data.min_size_policy must be upscale|reject (got {min_size_policy!r}) and "
                             f"data.bad_image_policy skip|raise (got {bad_image_policy!r})")
        self.min_size_policy, self.bad_image_policy = min_size_policy, bad_image_policy
        self._lists: dict[tuple[str, str], ImageList] | None = None
        self.data_train: UnpairedDataset | None = None
        self.data_val: PairedByIndexDataset | None = None
        self.data_test: PairedByIndexDataset | None = None

    # ------------------------------------------------------------------ finding data (cyclegan/data/layouts.py)
    def _dataset(self) -> Dataset:
        return Dataset(self.name, self.root, self.follow_links)

    def _folders(self) -> dict[str, dict[str, Path | None]]:
        """``{domain: {"train": folder, "test": folder or None}}``; raises when missing."""
        train = {"A": self.dir_a, "B": self.dir_b}
        test = {"A": self.test_dir_a, "B": self.test_dir_b}
        self.layout.locate(self._dataset(), train, test)
        for d in DOMAINS:
            if test[d] is not None and not test[d].exists():
                raise layout_missing(self._dataset(), f"test folder {test[d]}")
        return {d: {"train": train[d], "test": test[d]} for d in DOMAINS}

    def _resolve(self) -> dict[tuple[str, str], ImageList]:
        if self._lists is not None:
            return self._lists
        lists: dict[tuple[str, str], ImageList] = {}
        val_size = 16 if self.val_size is None else self.val_size
        folders = self._folders()
        _warn_shared_folders(folders)
        for d, f in folders.items():
            train = self.layout.scan(self._dataset(), f["train"], d, "train")
            if f["test"] is not None:
                test = self.layout.scan(self._dataset(), f["test"], d, "test")
                val = test if self.val_size is None else select_subset(test, self.val_size)
            else:
                train, test = holdout(train, val_size)
                val = test
            train = select_subset(train, self.max_train_images)
            lists[("train", d)], lists[("val", d)], lists[("test", d)] = train, val, test
            log.info(
                "data %s domain %s: %d train, %d val, %d test images (%s)",
                self.name, d, len(train), len(val), len(test), f["train"],
            )
        self._lists = lists
        return lists

    # ------------------------------------------------------------------ Lightning hooks
    def prepare_data(self) -> None:
        if not self.download:
            return
        if not self.layout.downloadable:
            log.warning("data.download=true is only supported for Berkeley datasets (source=berkeley); ignored")
            return
        self.layout.download(self._dataset(), {"A": self.dir_a, "B": self.dir_b})

    def _transform(self, train: bool):
        return build_transforms(
            image_size=self.image_size if train else self.eval_size,
            load_size=self.load_size,
            train=train,
            flip=self.flip,
            rotate=self.rotate,
            color_jitter=self.color_jitter,
        )

    def _draft(self, train: bool) -> int:
        return self.load_size if train else self.eval_size

    def setup(self, stage: str | None = None) -> None:
        lists = self._resolve()
        if stage in (None, "fit") and self.data_train is None:
            self.data_train = UnpairedDataset(
                lists[("train", "A")],
                lists[("train", "B")],
                self._transform(train=True),
                epoch_length=self.epoch_length,
                serial_batches=self.serial_batches,
                seed=self.seed,
                draft_size=self._draft(True),
            ).set_policies(**self._policies())
        if stage in (None, "fit", "validate") and self.data_val is None:
            self.data_val = self.eval_dataset("val")
        if self.cache_images:
            # Decoded once here, before the loader workers fork, so they share the arrays.
            for split, dataset in (("train", self.data_train), ("val", self.data_val)):
                if dataset is not None:
                    size = dataset.cache_decoded()
                    log.info("data.cache_images: %s images of %s decoded into memory (%.0f MiB)",
                             split, self.name, size / 2**20)
        if self.data_train is not None:
            self.data_train.check_readable()  # here, not in a DataLoader worker (eval datasets check on creation)
        if stage in (None, "test", "predict") and self.data_test is None:
            self.data_test = self.eval_dataset("test")

    def _loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        workers = self.num_workers
        if workers > 0:
            kill_leftover_workers_at_exit()
            warn_if_more_workers_than_cores(workers)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and workers > 0,
            drop_last=False,
            worker_init_fn=worker_init if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        if self.data_train is None:
            self.setup("fit")
        return self._loader(self.data_train, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        if self.data_val is None:
            self.setup("validate")
        return self._loader(self.data_val, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if self.data_test is None:
            self.setup("test")
        return self._loader(self.data_test, self.eval_batch_size, shuffle=False)

    # ------------------------------------------------------------------ helpers for evaluation
    def files(self, split: str, domain: str) -> list[str]:
        """Image paths of ``split`` (train/val/test) and ``domain`` (A/B), in dataset order."""
        split, domain = _check(split, domain)
        return list(self._resolve()[(split, domain)].paths)

    def image_list(self, split: str, domain: str) -> ImageList:
        split, domain = _check(split, domain)
        return self._resolve()[(split, domain)]

    def eval_dataset(self, split: str) -> PairedByIndexDataset:
        """Deterministic A/B dataset of ``split`` (paired by index, test transforms)."""
        split, _ = _check(split, "A")
        lists = self._resolve()
        dataset = PairedByIndexDataset(
            lists[(split, "A")], lists[(split, "B")], self._transform(train=False), draft_size=self._draft(False)
        ).set_policies(**self._policies())
        dataset.check_readable()
        return dataset

    def domain_dataset(self, split: str, domain: str, transform=None) -> DomainDataset:
        """Single-domain dataset of ``{"image", "path"}`` items (test transforms unless given)."""
        split, domain = _check(split, domain)
        dataset = DomainDataset(
            self._resolve()[(split, domain)],
            transform if transform is not None else self._transform(train=False),
            draft_size=self._draft(False),
        ).set_policies(**self._policies())
        dataset.check_readable()
        return dataset

    def _policies(self) -> dict:
        return dict(min_size=self.image_size, min_size_policy=self.min_size_policy,
                    bad_image_policy=self.bad_image_policy)

    def teardown(self, stage: str | None = None) -> None:
        # The count at the end: files skipped by any worker (their warnings went out as they were found).
        skipped = sorted({p for d in (self.data_train, self.data_val, self.data_test) if d is not None
                          for p in d.skipped_images()})
        if skipped:
            log.warning("data %s: %d image(s) were skipped as unreadable or too small (%s%s)", self.name,
                        len(skipped), ", ".join(skipped[:5]), ", ..." if len(skipped) > 5 else "")

    def domain_dataloader(self, split: str, domain: str, batch_size: int | None = None) -> DataLoader:
        return self._loader(self.domain_dataset(split, domain), batch_size or self.eval_batch_size, shuffle=False)

    def __repr__(self) -> str:
        return f"UnpairedDataModule(name={self.name!r}, source={self.source!r}, root={str(self.root)!r})"


def _warn_shared_folders(folders: dict[str, dict[str, Path | None]]) -> None:
    """One warning when domains A and B read the same folder, or one folder holds the other."""
    for split in ("train", "test"):
        a, b = folders["A"][split], folders["B"][split]
        if a is None or b is None:
            continue
        ra, rb = a.resolve(), b.resolve()
        if ra == rb:
            log.warning("domains A and B both read %s (%s split): a CycleGAN then learns to map the images to "
                        "themselves; give each domain its own folder (data.dir_a / data.dir_b)", a, split)
        elif ra in rb.parents or rb in ra.parents:
            outer, inner = (a, b) if ra in rb.parents else (b, a)
            log.warning("%s (%s split) holds the other domain's folder %s, and folders are searched recursively: "
                        "those images are in both domains; give each domain its own folder", outer, split, inner)


def _check(split: str, domain: str) -> tuple[str, str]:
    split = {"fit": "train", "validate": "val", "validation": "val"}.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    domain = str(domain).upper()
    if domain not in DOMAINS:
        raise ValueError(f"domain must be 'A' or 'B', got {domain!r}")
    return split, domain
