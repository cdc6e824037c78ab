"""OmegaConf resolvers used by the configs under conf/ (registered once, on import)."""

from __future__ import annotations

from omegaconf import OmegaConf


def register_resolvers() -> None:
    # trainer.max_epochs = model.n_epochs + model.n_epochs_decay, as in the reference schedule.
    if not OmegaConf.has_resolver("add"):
        OmegaConf.register_new_resolver("add", lambda *values: sum(values))
    # --help lists each group's options without the internal _*.yaml bases (hydra.help.template)
    if not OmegaConf.has_resolver("cyclegan_groups"):
        from cyclegan.config.overrides import help_groups

        OmegaConf.register_new_resolver("cyclegan_groups", help_groups)


register_resolvers()
