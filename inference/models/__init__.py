"""What finds and builds a model: the presets, the resolution of a name to a local directory, the
embedded default's build, the cache's catalog. Nothing is imported here."""
