"""Config support: OmegaConf resolvers, validation of a composed config, checks of command-line overrides."""
