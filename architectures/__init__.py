"""The bundled architecture specs (YAML), installed as convaudit.architectures."""
