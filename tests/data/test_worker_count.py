"""More DataLoader workers than cores: said once per process, in one line naming the key."""

import logging
import os
import warnings

import cyclegan.data.workers as workers
from cyclegan.data import UnpairedDataModule


def test_too_many_workers_is_one_warning_for_all_loaders(monkeypatch, caplog):
    monkeypatch.setattr(workers, "_worker_count_said", False)
    monkeypatch.setattr(workers, "available_cores", lambda: 1)
    many = (os.cpu_count() or 1) + 1  # more than torch's count too, so that its warning would fire
    dm = UnpairedDataModule(source="sample", image_size=32, load_size=36, num_workers=many, val_size=2)
    dm.setup("fit")
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:  # torch's own: silenced
        dm.train_dataloader()
        dm.val_dataloader()
    lines = [r.getMessage() for r in caplog.records if "num_workers" in r.getMessage()]
    assert lines == [f"data.num_workers={many} but this machine has 1 cores: the workers compete with training for them; "
                     "use at most 1 (0 decodes in the training process, enough for small images)"]
    assert not [w for w in caught if "worker" in str(w.message)]
