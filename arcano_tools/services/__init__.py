"""Services of the job core: the queue manager, the sync, webhooks, following a job, the
server watchdog and the job bus. They depend on the records (``domain/``), on the repository
*protocol* (never on a concrete store) and on the RunningHub client; they return typed
outcomes and import neither Reflex nor Starlette (``api/`` and ``web/`` translate)."""
