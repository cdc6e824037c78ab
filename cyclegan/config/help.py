"""``--help`` of train.py and evaluate.py: a short, curated page; ``--help-all``: Hydra's full listing.

Hydra prints ``hydra.help.template`` for ``--help``; conf/hydra/default.yaml sets it to
``${cyclegan_help:<config name>}`` (this module's :func:`app_help`, registered by cyclegan.config.resolvers).
The page names the groups with their options (generated from conf/, so it never goes stale), the most
used keys with one line each, and three examples. ``--help-all`` (:func:`help_arguments` turns it into
``--help`` and asks for the full page) adds every key of the composed config with its value, as Hydra's
own help does; ``--hydra-help`` stays Hydra's page about its own flags.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from cyclegan.config.groups import help_groups

__all__ = ["FULL_FLAG", "app_help", "help_arguments"]

FULL_FLAG = "--help-all"
_full = False  # set by help_arguments when the command line asked for FULL_FLAG

# Text for string.Template (Hydra substitutes $CONFIG, $APP_CONFIG_GROUPS, ...): a literal dollar is $$.
_PAGES = {
    "train": """\
python train.py [group=option ...] [key=value ...]
Trains a CycleGAN on Lightning + Hydra. Without arguments: the main job (data=demo, experiment=demo_cpu),
which fine-tunes the bundled photo -> Monet painter on the bundled sample on a CPU in about a minute,
then names the files it wrote and the commands to translate with and evaluate its checkpoint.

== Groups (group=option) ==
{groups}

== Most used keys (key=value) ==
  data=NAME paths.data_dir=DIR     the dataset; Berkeley sets are downloaded into paths.data_dir
  data.image_size / data.load_size training crop / the size images are resized to before cropping
  data.batch_size                  images per domain per step
  model.gen model.ngf              generator (resnet, unet, unet_keras) and its width
  model.lambda_cycle               weight of the cycle-consistency loss (model.lambda_identity: identity, relative)
  model.lr                         Adam learning rate; model.n_epochs + model.n_epochs_decay = epochs
  model.init_from=FILE[:AB|:BA]    start from given weights: a run's .ckpt, pretrained:photo2monet_cpu, an export
  trainer.precision                32-true, bf16-mixed, 16-mixed
  trainer.max_steps / max_time     stop after N steps / after DD:HH:MM:SS
  ckpt_path=last hydra.run.dir=RUN continue a stopped run in place
  -m a=1,2 b=x,y                   a sweep: one job per combination, outputs/multirun/<date>/summary.md

== Examples ==
  python train.py data=vangogh2photo model.gen=unet
  python train.py experiment=monet_cpu paths.data_dir=/datasets          (photo -> Monet on 2 CPU cores)
  python train.py ckpt_path=last hydra.run.dir=outputs/train/<run>      (continue a stopped run)

python train.py --help-all: every key with its value;  --cfg job: the composed config;  --hydra-help: Hydra's flags.
README.md and docs/EXPERIMENTS.md have the rest.
""",
    "evaluate": """\
python evaluate.py ckpt_path=PATH [data=NAME] [key=value ...]
Scores a trained checkpoint on a dataset's test split (FID, KID, MiFID, SSIM to the input, cycle L1,
discriminator accuracy, target-domain rate) and writes metrics.json, report.md and samples.png into
outputs/evaluate/<date>_<time>/. ckpt_path is required: a checkpoint written by train.py
(<run>/checkpoints/last.ckpt), a bundled painter (pretrained:NAME) or an exported generator. Give the same
data options as the training (data=, paths.data_dir, data.image_size).

== Groups (group=option) ==
{groups}

== Most used keys (key=value) ==
  ckpt_path=PATH                   required: the checkpoint (or lone generator) to score
  data=NAME paths.data_dir=DIR     the dataset whose test split is translated
  metrics.directions=[BA]          score one direction only (default: [AB, BA])
  direction=AB|BA                  which way a lone generator translates, when its file does not say
  metrics.max_images=N             a quick evaluation on N test images per direction
  metrics.real_ref=train+test      the real images FID/KID compare against (test, train+test, train)
  metrics.train_ref=true           MiFID: memorisation distance to the training images
  metrics.inception                the Inception network: auto, fid_helper, torchmetrics, a weights file
  device / bf16 / compile          where and how the networks run (auto, cpu, cuda; bf16 autocast; torch.compile)

== Examples ==
  python evaluate.py ckpt_path=outputs/train/<run>/checkpoints/last.ckpt data=demo
  python evaluate.py ckpt_path=last.ckpt data=monet2photo paths.data_dir=/datasets metrics.directions=[BA]
  python evaluate.py ckpt_path=pretrained:photo2monet_cpu data=monet2photo metrics.max_images=50 device=cpu

python evaluate.py --help-all: every key with its value;  --hydra-help: Hydra's flags.  Details: docs/EVALUATION.md.
""",
}

_FULL = """\
== Configuration groups ==
Compose your configuration from those groups (group=option)

{groups}

== Config ==
Override anything in the config (foo.bar=value)

$CONFIG
"""


def help_arguments(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--help-all`` replaced by Hydra's ``--help``, remembering that the full page was asked for."""
    global _full
    if FULL_FLAG not in argv:
        return list(argv)
    _full = True
    return ["--help" if arg == FULL_FLAG else arg for arg in argv]


def app_help(config_name: str) -> str:
    """The ``--help`` page of conf/<config_name>.yaml (the full listing after ``--help-all``)."""
    groups = "\n".join(textwrap.fill(line, width=118, subsequent_indent="    ", break_on_hyphens=False)
                       for line in help_groups(config_name).splitlines())
    page = _PAGES.get(str(config_name))
    if _full or page is None:
        return (page.split("\n== Groups", 1)[0] + "\n\n" if page else "") + _FULL.format(groups=groups)
    return page.format(groups=groups)
