"""The error of background tasks whose tenant is gone (shared by the Celery and django.tasks glue).

Its own module so that neither needs the other's framework installed.
"""

from __future__ import annotations

from .exceptions import OmnitenantError

__all__ = ["TaskTenantNotFound"]


class TaskTenantNotFound(OmnitenantError):
    """The tenant a task was queued for does not exist (any more); the task does not run.

    One message argument only, so Celery's result backends can rebuild it on the caller's side.
    """


TaskTenantNotFound.__module__ = "omnitenant_async.task_errors"
