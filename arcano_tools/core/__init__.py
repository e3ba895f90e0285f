"""The job core: tools, statuses, the queue manager, sync and finish. Imports no Reflex."""
