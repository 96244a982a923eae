"""Imports every table module so that `metadata` is complete (for migrations and tests)."""

from promptkeeper.access import models as access_models
from promptkeeper.db.base import Base
from promptkeeper.prompts import models as prompt_models

metadata = Base.metadata
__all__ = ["access_models", "metadata", "prompt_models"]
