"""``shadownet submit``: render a platform's spec as ``jobs render`` does, then hand it over the way its
declaration (``registry``) says: boto3 for SageMaker, ``kubectl`` or ``gcloud`` where installed (else the command
and the spec are printed), the parameters printed for UAI Train. The ways themselves: ``submitters``.
"""

from __future__ import annotations

from . import jobs
from .submitters import Job, SubmitConfig

__all__ = ["SubmitConfig", "submit"]


def submit(config: SubmitConfig, out=print) -> int:
    """Submit; returns the exit code: 0 submitted or completed, 1 the job failed or was stopped."""
    text = jobs.render(config.platform, list(config.settings))
    parameters, _ = jobs.parameters(list(config.settings), config.platform)
    job = Job(jobs.parsed(text, config.platform), text, parameters)
    return jobs.declaration(config.platform).submit(job, config, out)
