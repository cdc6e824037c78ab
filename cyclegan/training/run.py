"""What `train.py` does once Hydra has composed the config: instantiate, fit, report.

Besides fitting, `train()`
- resumes from `ckpt_path` (a file, or `last`: the newest of this run's own checkpoints, see
  cyclegan/training/resume_checkpoint.py) exactly where the run stopped, continuing its W&B run;
- writes checkpoints atomically (cyclegan.training.atomic_checkpoint.AtomicCheckpointIO) unless
  `trainer.plugins` is set;
- returns the final metrics with `objective` = the `optimized_metric` (what a sweeper minimises);
- leaves `<run dir>/result.json` for the sweep summary (cyclegan/training/sweep.py). In a multirun a
  failing job is recorded there and returns no objective, so the other jobs go on; a single
  run re-raises (train.py then exits non-zero with one line for user errors);
- leaves the run folder as it was when the run is refused before it starts, or has nothing to
  train (cyclegan/training/run_folder.py): no stray folder, no rewritten result.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities.exceptions import SIGTERMException

from cyclegan.config.checks import validate_config
from cyclegan.config.hydra_run import hydra_job, in_multirun
from cyclegan.common.errors import MissingFileError, UserError, find_cause, one_line
from cyclegan.common.loggers import instantiate_group
from cyclegan.training.atomic_checkpoint import AtomicCheckpointIO, PublishCheckpoints, disk_full_cause
from cyclegan.training.init_from import build_model
from cyclegan.training.metrics_history import carry_over_metrics
from cyclegan.training.preflight import DiskFullError, preflight_run
from cyclegan.training.resume import wandb_run_id
from cyclegan.training.resume_checkpoint import (
    NothingTrained,
    check_something_left,
    checkpoint_step,
    find_last_checkpoint,
    newest_checkpoint,
)
from cyclegan.training.run_folder import FolderBefore, take_record, undo_refused_run
from cyclegan.training.shutdown import TrainingInterrupted, interruption_of
from cyclegan.training.summary import summarize
from cyclegan.training.sweep import (
    job_overrides,
    restore_previous_result,
    wandb_sweep_settings,
    write_job_result,
    write_summary,
)
from cyclegan.training.trainer_setup import build_trainer, lightning_config_errors

log = logging.getLogger(__name__)


def _not_an_advert(record: logging.LogRecord) -> bool:
    # Lightning >= 2.6 logs a "💡 Tip" advertising its cloud logger at every Trainer start: not about the run
    return not str(record.msg).startswith("💡 Tip")


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_not_an_advert)

# The objective when `optimized_metric` was not logged (e.g. with ~callbacks.val_kid): a weak
# stand-in (a low generator loss can mean a weak discriminator), so train() warns when it is used.
FALLBACK_METRIC = "train/G_loss_epoch"


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str, cfg: DictConfig | None = None,
                      run_dir_existed: bool | None = None) -> str | None:
    """A checkpoint file, or `last`: the newest state among this run's own checkpoints
    (cyclegan.training.resume_checkpoint.find_last_checkpoint; never another run's)."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        own_dir = OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath") if cfg is not None else None
        return str(find_last_checkpoint(output_dir, checkpoint_dir=own_dir, run_dir_existed=run_dir_existed))
    if not Path(ckpt_path).is_file():
        raise MissingFileError(f"ckpt_path={ckpt_path}: no such file")
    return str(ckpt_path)


def configure_wandb(cfg: DictConfig, ckpt_path: str | None) -> None:
    """W&B loggers: a sweep job joins the sweep's group under its overrides' name; a resumed run
    continues the W&B run stored in its checkpoint. Keys set explicitly in the config win."""
    nodes = [node for node in (cfg.get("logger") or {}).values()
             if isinstance(node, DictConfig) and str(node.get("_target_", "")).endswith("WandbLogger")]
    if not nodes:
        return
    sweep = wandb_sweep_settings()
    run_id = wandb_run_id(ckpt_path) if ckpt_path else None
    with open_dict(cfg):
        for node in nodes:
            for key in ("group", "job_type"):
                if sweep and node.get(key) is None:
                    node[key] = sweep[key]
            if sweep and node.get("name") == cfg.get("run_name"):  # the default name is the same for every job
                node.name = sweep["name"]
            if run_id and node.get("id") is None:
                node.id = run_id
                node.resume = "allow"
                log.info("continuing W&B run %s", run_id)


def missing_metric_reason(metrics: dict[str, float], key: str | None, cfg: DictConfig | None = None) -> str:
    """Why `key` is not among the final `metrics`, from what was logged and the config."""
    if cfg is not None and str(key).startswith("val/kid") and not OmegaConf.select(cfg, "callbacks.val_kid"):
        return "callbacks.val_kid is off"
    if not any(k.startswith("val/") for k in metrics):
        trainer = cfg.get("trainer") if cfg is not None else None
        every = OmegaConf.select(cfg, "trainer.check_val_every_n_epoch", default=1) if cfg is not None else 1
        if trainer is not None and trainer.get("limit_val_batches") == 0:
            return "validation is off (trainer.limit_val_batches=0)"
        stop = "the run"
        if trainer is not None and (trainer.get("max_steps") or -1) > 0:
            stop = f"trainer.max_steps={trainer.max_steps}"
        elif trainer is not None and trainer.get("max_time"):
            stop = f"trainer.max_time={trainer.max_time}"
        return (f"the validation interval was not reached: validation runs after every {every} epoch(s) "
                f"(trainer.check_val_every_n_epoch) and {stop} ended before the first")
    return f"validation did not log it (logged: {', '.join(sorted(k for k in metrics if k.startswith('val/')))})"


def select_objective(metrics: dict[str, float], key: str | None,
                     cfg: DictConfig | None = None) -> tuple[str | None, float]:
    """(name, value) of the metric a sweeper minimises: `key`, else FALLBACK_METRIC, else NaN."""
    if key and key in metrics:
        return key, metrics[key]
    report = log.warning if in_multirun() else log.info  # only a sweeper uses the objective
    why = missing_metric_reason(metrics, key, cfg)
    if FALLBACK_METRIC in metrics:
        report("optimized_metric=%s was not logged (%s); the objective is %s", key, why, FALLBACK_METRIC)
        return FALLBACK_METRIC, metrics[FALLBACK_METRIC]
    report("optimized_metric=%s was not logged (%s), nor was %s; there is no objective",
           key, why, FALLBACK_METRIC)
    return None, math.nan


@contextlib.contextmanager
def expected_lightning_warnings(cfg: DictConfig, ckpt_path: str | None) -> Iterator[None]:
    """Lightning warnings that are wrong about this framework, silenced for one fit (each with its reason)."""
    with warnings.catch_warnings():
        # data.num_workers is a config key chosen per dataset (the sample decodes 64 px images faster in
        # process, num_workers=0); Lightning suggests raising it for every loader with fewer than 2 workers.
        warnings.filterwarnings("ignore", message=r".*does not have many workers which may be a bottleneck")
        # Lightning 2.6's pytree helper builds torch's LeafSpec, which torch 2.13 deprecates: nothing to change here
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        # a checkpoint after the iteration's optimizer steps is the state exact resume continues from
        warnings.filterwarnings("ignore", message=r"Using ModelCheckpoint with manual optimization and every_n_train")
        own_dir = OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath")
        if ckpt_path and own_dir and Path(ckpt_path).resolve().parent == Path(own_dir).resolve():
            # resuming in place writes on into the checkpoint folder it resumes from, on purpose
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        elif ckpt_path:
            # resuming from another run's folder: this run keeps its own checkpoints (top-k starts afresh)
            warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
        yield


def apply_cpu_threads(threads: int | None) -> None:
    """``cpu_threads``: torch's intra-op threads for this process (None leaves torch's default)."""
    if threads:
        torch.set_num_threads(int(threads))
        log.info("cpu_threads=%d: torch uses %d intra-op threads", threads, torch.get_num_threads())


@dataclasses.dataclass
class RunProgress:
    """How far fit() got: a run refused before `started` leaves its folder as it was (run_folder.py)."""

    started: bool = False
    folder_before: FolderBefore | None = None  # what the run folder held before Hydra made it (train.py runs)


def fit(cfg: DictConfig, progress: RunProgress | None = None) -> dict[str, float]:
    progress = progress if progress is not None else RunProgress()
    validate_config(cfg)  # bad keys/values/combinations fail here, before anything heavy is built
    preflight_run(cfg)  # output dir writable with room for checkpoints; ckpt_path safe to load
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    apply_cpu_threads(cfg.get("cpu_threads"))

    existed = progress.folder_before.existed if progress.folder_before is not None else None
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir, cfg, run_dir_existed=existed)
    if ckpt_path:
        check_something_left(ckpt_path, cfg.trainer)  # a finished run resumed: refused before a file is touched
    configure_wandb(cfg, ckpt_path)

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model: pl.LightningModule = build_model(cfg.model, resuming=ckpt_path is not None)  # + model.init_from
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    # a crash while saving must not leave a truncated last.ckpt (a user-given trainer.plugins replaces this)
    # and a checkpoint is put in place only once the metrics it covers are on disk (PublishCheckpoints)
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    if plugins:
        callbacks.append(PublishCheckpoints())
    trainer = build_trainer(cfg.trainer, callbacks=callbacks, logger=loggers or False, **plugins)  # refusals: one line

    progress.started = True  # from here on the run writes into its folder
    if ckpt_path:
        carry_over_metrics(loggers, ckpt_path)  # csv/metrics.csv keeps the steps before the checkpoint

    hparams = OmegaConf.to_container(cfg, resolve=True)
    hparams["overrides"] = job_overrides()  # hydra.overrides.task: what this run (or sweep job) changed
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)

    start_step = checkpoint_step(ckpt_path) if ckpt_path else 0
    try:
        with expected_lightning_warnings(cfg, ckpt_path), lightning_config_errors(cfg.trainer):
            try:
                trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)  # never unpickle code
            finally:
                PublishCheckpoints.publish(trainer, still_training=False)  # however the fit ended, the checkpoints it wrote go in place
    except SIGTERMException as exc:  # Lightning's own SIGTERM stop (a SystemExit with no exit code)
        _finish_wandb(trainer, exit_code=1)
        raise interruption_of(trainer) from exc
    except Exception as exc:
        _finish_wandb(trainer, exit_code=1)
        full = disk_full_cause(exc)
        if full is not None:
            raise _disk_full_error(full, cfg) from exc
        raise
    except BaseException:
        _finish_wandb(trainer, exit_code=1)
        raise
    _finish_wandb(trainer, exit_code=0)
    # (under ddp_spawn this process's counter stays put; the metrics logged by a step come back)
    trained = trainer.global_step > start_step or any(k.startswith("train/") for k in trainer.callback_metrics)
    if not trained:
        raise NothingTrained(
            f"nothing was trained: {ckpt_path or 'the run'} is at step {start_step} (epoch {trainer.current_epoch}) "
            f"and the schedule ends there (trainer.max_epochs={trainer.max_epochs}, trainer.max_steps="
            f"{trainer.max_steps}): raise model.n_epochs / model.n_epochs_decay or trainer.max_steps to train more"
        )

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    log.info("%s", summarize(cfg, trainer, datamodule))  # the files written and the next two commands
    return metrics


def _disk_full_error(exc: OSError, cfg: DictConfig) -> DiskFullError:
    folder = Path(OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath") or Path(cfg.paths.output_dir) / "checkpoints")
    newest = newest_checkpoint(folder)  # the previous save of a file is intact: writes are atomic
    kept = (f"the last good checkpoint is {newest[0]} (step {newest[1]}): free some space and resume with "
            f"ckpt_path={newest[0]}") if newest else f"no checkpoint was saved yet in {folder}"
    with contextlib.suppress(OSError):
        kept += f" ({shutil.disk_usage(folder).free / 1024**2:.0f} MB free there now)"
    return DiskFullError(f"the disk is full ({exc.strerror or 'no space left'}, writing {exc.filename or 'a file'}); "
                         f"{kept}")


def _finish_wandb(trainer: pl.Trainer, exit_code: int) -> None:
    # End the W&B run now (marked failed when training raised): the next job of an in-process
    # sweep starts its own run.
    from pytorch_lightning.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)


def train(cfg: DictConfig) -> dict[str, float | None]:
    """Fit `cfg`; the final metrics with `objective` (None when it is missing, not finite or the
    job failed in a multirun; see the module doc)."""
    output_dir = cfg.paths.output_dir
    progress = RunProgress(folder_before=take_record(output_dir))
    try:
        try:
            metrics = fit(cfg, progress)
        except KeyboardInterrupt as exc:
            # Ctrl-C again after the checkpoint of the first was saved (while Lightning was still
            # cleaning up): that first stop is what happened, and it is recorded as such below
            first = find_cause(exc, TrainingInterrupted)
            if first is None:
                raise
            raise first from None
    except TrainingInterrupted as exc:  # Ctrl-C / SIGTERM: a resumable checkpoint was saved
        with contextlib.suppress(OSError):
            write_job_result(output_dir, "interrupted", error=one_line(exc))
        if in_multirun():
            # Hydra records a job's exception and launches the next job: exit to stop the sweep
            log.error("%s; the sweep stops", one_line(exc))
            write_summary(hydra_job().sweep.dir)  # Hydra's job-end callback will not run
            raise SystemExit(exc.exit_code) from exc
        raise
    except Exception as exc:
        if not in_multirun() and (not progress.started or isinstance(exc, NothingTrained)):
            undo_refused_run(progress.folder_before)  # a refused run leaves no folder, and no file of the run it named changed
            raise
        if isinstance(exc, NothingTrained) and (previous := restore_previous_result(output_dir)) is not None:
            # a finished job of a resumed sweep: its result stands
            log.warning("%s; the job keeps its earlier result", one_line(exc))
            return {"objective": previous.get("objective")}
        with contextlib.suppress(OSError):  # an unwritable run directory is the error being reported
            write_job_result(output_dir, "failed", error=one_line(exc))
        if not in_multirun():
            raise
        if isinstance(exc, UserError):  # a config or data problem: its message says it all
            log.error("job failed: %s (recorded in %s/result.json); the sweep goes on", one_line(exc), output_dir)
        else:
            log.exception("job failed (recorded in %s/result.json); the sweep goes on", output_dir)
        return {"objective": None}
    name, value = select_objective(metrics, cfg.get("optimized_metric"), cfg)
    # No objective (None) rather than NaN: the Optuna sweeper records None as a failed trial and
    # goes on, while a NaN makes it crash (optuna 2.10 refuses to record it).
    metrics["objective"] = value if math.isfinite(value) else None
    write_job_result(output_dir, "ok", metrics=metrics, objective=value, objective_metric=name)
    return metrics
