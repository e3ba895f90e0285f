"""Records of the job core: statuses and other vocabularies, jobs, users, accounts, tools,
errors, and the repository seam the services depend on. Pure data and rules: no I/O, no
Reflex, no HTTP (``services/`` and ``store/`` build on this layer; it imports neither)."""
