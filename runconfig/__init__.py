"""The one YAML run config: generic strict loading (``loader``) and each stage's section (``sections``).

It lives outside ``dataset``, ``training`` and ``conversion`` so that every stage can read its own
section without importing another stage (dependencies point one way, see DESIGN.md section 3).
"""
from runconfig.loader import ConfigError, build_dataclass, parse_overrides
from runconfig.run_config import load_section

__all__ = ["ConfigError", "build_dataclass", "load_section", "parse_overrides"]
