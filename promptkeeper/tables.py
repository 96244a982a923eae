"""Every domain's tables in one `metadata` (for schema comparisons and tests).

It sits above the domains: storage (`db/`) defines `Base` and knows no domain, and the migrations
run without the models.
"""

from promptkeeper.access import models as access_models
from promptkeeper.audit import models as audit_models
from promptkeeper.db.base import Base
from promptkeeper.evaluations import models as evaluation_models
from promptkeeper.experiments import models as experiment_models
from promptkeeper.idempotency import models as idempotency_models
from promptkeeper.monitoring import models as monitoring_models
from promptkeeper.prompts import models as prompt_models
from promptkeeper.workflow import models as workflow_models

metadata = Base.metadata
__all__ = [
    "access_models",
    "audit_models",
    "evaluation_models",
    "experiment_models",
    "idempotency_models",
    "metadata",
    "monitoring_models",
    "prompt_models",
    "workflow_models",
]
