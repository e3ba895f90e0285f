"""Every tunable number of the project, each with the reason it has its value.

Settings that operators change live in :mod:`arcano_tools.config`; what is here is fixed by
the product, by RunningHub's documented limits or by the plan (``WATCHDOG_FALLBACK_PLAN.md``).
"""

from __future__ import annotations

from typing import Final

# --- The plan's watchdog constants (defaults of the settings of the same names) -------------
#: The plan waits 30 s in an active status before the first sync: most jobs end by then.
WATCHDOG_INITIAL_DELAY_MS: Final = 30_000
#: The plan polls the sync endpoint every 15 s after the initial delay.
WATCHDOG_POLL_INTERVAL_MS: Final = 15_000
#: The plan forces a job to ``failed`` 12 minutes after it started.
WATCHDOG_MAX_TIMEOUT_MS: Final = 12 * 60 * 1000
#: The plan's message for a forced timeout; ``{limit}`` follows the setting ("12 minutos").
TIMEOUT_MESSAGE_TEMPLATE: Final = "Timeout: processamento excedeu o tempo limite ({limit})"
#: The plan's toasts.
TOAST_SUCCESS: Final = "Imagem processada com sucesso!"
TOAST_FAILURE_DEFAULT: Final = "Erro no processamento"

#: A page watchdog whose browser tab disconnected keeps running this long, so a reload (which
#: reconnects within a second or two) never interrupts it; after that it stops.
PAGE_WATCHDOG_GRACE_MS: Final = 15_000

#: A page following a job re-reads it when the job bus reports a change; with no change it
#: still re-reads about this often (jittered ±20 %), in case an update was lost on the way
#: (the bus is only a hint: the Redis relay may drop one). A minute keeps a thousand open
#: pages at ~17 reads/s (issue 9: ≤ 50 queries/s); with the watchdog on, a page past the
#: initial delay re-reads after each sync anyway.
FOLLOW_REREAD_QUIET_S: Final = 60.0

# --- What the tool pages show while a job runs ------------------------------------------------
#: The least an estimated bar shows, so the page visibly took the job.
PROGRESS_QUEUED_PCT: Final = 5
#: Where the bar stops until the result exists (it never claims to be done before it is).
PROGRESS_MAX_ACTIVE_PCT: Final = 95
#: Completed jobs of a tool needed before a page estimates the time left. One is enough for
#: a person (the page says it is an estimate; with none it says so and shows no percentage);
#: the learned check schedule (``services/schedule.py``, ``MIN_HISTORY``) needs far more,
#: since a wrong quantile costs lost-webhook detection time.
TYPICAL_DURATION_MIN_HISTORY: Final = 1
#: The most recent completed jobs that median is taken over.
TYPICAL_DURATION_WINDOW: Final = 50

# --- Credits -------------------------------------------------------------------------------
#: A new user of the demo gets enough credits to try every tool a few times.
STARTING_CREDITS: Final = 100
#: ``ARCANO_NEW_USER_CREDITS`` is capped here: a sign-up never mints more than the demo's grant.
MAX_NEW_USER_CREDITS: Final = 100

# --- Uploads --------------------------------------------------------------------------------
#: RunningHub's upload endpoint refuses files over 30 MB (code 809); we refuse them first.
MAX_UPLOAD_BYTES: Final = 30 * 1024 * 1024
#: Images above 20 MB are almost always a mistake (RAW files, huge scans) and upscale badly.
MAX_IMAGE_BYTES: Final = 20 * 1024 * 1024
#: Upscaling a 4096 px image ×4 would produce 16k output; the tools are not meant for that.
MAX_IMAGE_SIDE_PX: Final = 4096
#: Image formats Pillow reads and RunningHub's LoadImage node accepts.
ALLOWED_IMAGE_FORMATS: Final = frozenset({"PNG", "JPEG", "WEBP"})
#: Video containers recognised by their magic bytes (MP4/MOV share the ISO-BMFF ``ftyp`` box).
ALLOWED_VIDEO_KINDS: Final = frozenset({"mp4", "webm"})

# --- RunningHub client ------------------------------------------------------------------------
#: Connect quickly or fail: RunningHub is either reachable or not.
RH_CONNECT_TIMEOUT_S: Final = 5.0
#: Reads: the create call can take a few seconds when RunningHub is busy; uploads take longer.
RH_READ_TIMEOUT_S: Final = 20.0
RH_UPLOAD_TIMEOUT_S: Final = 60.0
#: Transient failures (5xx, network, code 500) are retried this many times with backoff.
RH_MAX_RETRIES: Final = 2
#: Base of the exponential backoff between those retries, jittered ±50 %.
RH_RETRY_BASE_S: Final = 0.2

# --- Queue manager ----------------------------------------------------------------------------
#: After a 421/415 (RunningHub's queue full) a job waits this long before the next try, doubling.
QUEUE_RETRY_BASE_S: Final = 1.0
#: …capped here (RunningHub suggests retrying a busy instance within 30–120 s).
QUEUE_RETRY_MAX_S: Final = 30.0
#: How often the dispatcher looks for queued jobs whose retry time has come.
DISPATCH_TICK_S: Final = 0.5
#: Dispatches (queue reads) this far apart at least: a burst of wakes shares one.
DISPATCH_MIN_GAP_S: Final = 0.02

# --- Server watchdog and upstream caps ---------------------------------------------------------
#: At most this many RunningHub calls in flight per backend process (RunningHub publishes no
#: rate limit; public clients poll every 2–10 s, so a few dozen calls at once is polite).
UPSTREAM_MAX_CONCURRENCY: Final = 8
#: …and at most this many calls per second per process.
UPSTREAM_MAX_RPS: Final = 20.0
#: A live process spends at most ~3 min in ``starting`` (two 60 s uploads + a 20 s create call
#: + retries); past 5 min with no task id the process that was starting the job is gone. Only
#: for starts written without a start lease (by a version before it, during a rolling deploy);
#: every other start is judged by its lease, below.
STARTING_STUCK_MS: Final = 5 * 60 * 1000
#: While a process uploads a job's inputs and waits on RunningHub's create call it renews a
#: lease on the job this often (one small conditional UPDATE per start in flight)…
START_HEARTBEAT_S: Final = 2.0
#: …for this long. Three renewals missed in a row mean the process is gone (SIGKILL, OOM, a
#: lost host) and any process puts the job back in the queue: a crash costs seconds, where
#: the 5-minute rule above kept both of an account's slots and let 45 of 50 queued jobs reach
#: their deadline. A live process that stalls longer (a database hiccup) only loses the job to
#: a new claim: its late answer is fenced and its task cancelled. Hosts' clocks must agree to
#: well within this (NTP), since one writes the lease and another reads it.
START_LEASE_S: Final = 6.0
#: How often every process looks for starts whose lease expired (one indexed query): a crash
#: is recovered at most START_LEASE_S + this after the last renewal, under 10 s.
START_RECOVERY_EVERY_S: Final = 1.0
#: A graceful stop (SIGTERM, a deploy) lets the starts in flight finish on their own this long
#: — a create call usually answers within a second, and one that landed is better saved than
#: left as a duplicate task — then puts the rest back in the queue for the next process.
SHUTDOWN_START_GRACE_S: Final = 2.0

#: Webhook events and upstream errors are kept this long (the operator page's health tables).
EVENT_RETENTION_S: Final = 7 * 24 * 3600
#: How often a server watchdog prunes them.
PRUNE_EVERY_S: Final = 3600
#: How often a server watchdog recounts each account's in-flight slots from the jobs that
#: hold one (a drifted counter would block an account, or overfill it, for good).
RECONCILE_SLOTS_EVERY_S: Final = 60

# --- Webhooks ---------------------------------------------------------------------------------
#: Length of the hex HMAC token in webhook URLs (128 bits: unguessable, short enough for URLs).
WEBHOOK_TOKEN_HEX_CHARS: Final = 32
#: Longest task id we accept or store (the ``task_id`` columns are this wide).
TASK_ID_MAX_CHARS: Final = 64
#: Largest webhook body we read; RunningHub's envelopes are a few KB.
MAX_WEBHOOK_BODY_BYTES: Final = 256 * 1024
#: The unauthenticated old-style route (``POST /webhooks/runninghub``) keeps an event whose
#: task id is not stored yet, to apply it when the id is saved. A real one waits seconds (the
#: create call's answer), so at most one per start in flight — a few dozen with every account
#: full. 1,000 unapplied ones is a flood or a bug; past it a delivery is answered as before but
#: not stored (nothing is lost: the job's own webhook URL and the watchdog's checks still end
#: it). 1,000 rows of at most BODY_KEEP_CHARS (4,000) characters: about 4 MB at worst.
MAX_UNMATCHED_WEBHOOKS: Final = 1_000
#: While deliveries are not kept, one warning per burst: a new one only after this long
#: without any (the metric ``arcano_webhooks_not_kept_total`` counts every one).
UNMATCHED_DROP_LOG_QUIET_S: Final = 60.0

# --- Job events (server-sent events for scripts) -----------------------------------------------
#: A quiet event stream sends a comment this often (proxies close idle connections near 60 s).
SSE_HEARTBEAT_S: Final = 15.0

# --- Auth ---------------------------------------------------------------------------------------
#: User tokens minted by the CLI and for anonymous browsers live a week (Supabase: 1 h + refresh;
#: we have no refresh flow in embedded mode, so a longer life keeps anonymous users' jobs theirs).
USER_TOKEN_TTL_S: Final = 7 * 24 * 3600
#: Supabase's signing keys (JWKS) are fetched once and cached; a token naming a key id we do not
#: hold triggers a refetch (keys rotate), at most this often, so forged key ids cannot make
#: every request a call to Supabase.
JWKS_MIN_REFETCH_S: Final = 60.0
#: A browser's Supabase session is refreshed this long before its access token expires (or a
#: quarter of the token's life, if shorter: short test lifetimes).
SESSION_REFRESH_MARGIN_S: Final = 60.0
#: A tab's session keeper wakes at least this often (to stop once the tab is gone).
SESSION_KEEPER_TICK_S: Final = 5.0
#: Timeout of one call to Supabase Auth (sign-in, refresh, JWKS).
SUPABASE_HTTP_TIMEOUT_S: Final = 10.0

# --- The emulator's catalogue -------------------------------------------------------------------
#: Ids of the AI apps the emulator knows (its stand-ins for Arcano's RunningHub apps). The tool
#: configuration points at these by default, so ``make run`` works with no configuration.
EMULATOR_APP_UPSCALER: Final = "1937084629516193794"
EMULATOR_APP_POSE_CHANGER: Final = "1937084629516193795"
EMULATOR_APP_VESTE_AI: Final = "1937084629516193796"
EMULATOR_APP_VIDEO_UPSCALER: Final = "1937084629516193797"
#: Node ids of the emulated apps' inputs: the main image/video in node 1, the second image
#: (pose reference or garment) in node 2, the scale factor in node 3.
NODE_MAIN_INPUT: Final = "1"
NODE_SECOND_IMAGE: Final = "2"
NODE_SCALE: Final = "3"
#: Default emulated task duration: "a few seconds", like a real small upscale.
EMULATOR_DEFAULT_TASK_MS: Final = 3000
