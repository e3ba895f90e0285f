"""Names ``vulture`` (``make lint``) must not report, each with why it is alive.

Vulture reports code nothing under ``arcano_tools/`` refers to by name. The entries below are
used where it cannot look: by a framework, by the design's contract, or only by the tests and
the bench (an API they exercise). A name here hides every definition of that name, so keep the
list short. Never imported or run; ``ruff`` checks it like any module.
"""

import logging
import sqlite3

from arcano_tools.components.job_clock import JobEstimate, _Countdown, _JobClock
from arcano_tools.components.result_facts import ResultFacts
from arcano_tools.config import Settings
from arcano_tools.domain.records import Account
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import JobStatus
from arcano_tools.emulator.control import TaskStats, WebhookStats
from arcano_tools.logs import LogThread, _Listener
from arcano_tools.runninghub.client import AccountStatus, CreatedTask
from arcano_tools.services import auth, schedule
from arcano_tools.store.group_commit import GroupCommit
from arcano_tools.store.memory import InMemoryStore
from arcano_tools.web import downloads

# --- frameworks -------------------------------------------------------------------------------
Settings.model_config  # pydantic-settings reads it (extra="ignore", populate_by_name)
sqlite3.Connection.isolation_level  # set to None in store.create_engine: we emit BEGIN ourselves
WebhookStats.sent  # the emulator's /_stats: serialised by dataclasses.asdict
WebhookStats.dropped  # idem
WebhookStats.duplicates  # idem
TaskStats.succeeded  # idem
LogThread.enqueue  # logging.handlers.QueueHandler's hook, called by its emit
_Listener.enqueue_sentinel  # logging.handlers.QueueListener's hook, called by its stop
_JobClock.library  # a Reflex component's JS module (assets/job_clock.jsx), read by Reflex
_Countdown.counts_down  # React props: declared as fields, set by keyword (job_clock.py)
JobEstimate.soon  # idem
JobEstimate.about  # idem
JobEstimate.sentence  # idem
ResultFacts.library  # idem (assets/result_facts.jsx)

# --- the design's contract --------------------------------------------------------------------
Settings.supabase_url  # SUPABASE_URL: the production (Supabase) deployment reads it
Settings.supabase_service_role_key  # SUPABASE_SERVICE_ROLE_KEY: idem
JobStatus.PENDING  # the design's first status (pending → queued → …), even if nothing sets it

# --- exercised by the tests and the bench only ------------------------------------------------
InMemoryStore  # the SQL store's in-memory twin: the unit and contract tests run on it
Repository.ledger  # the contract tests check charges and refunds against the credit ledger
Account.disabled_reason  # why an account was disabled (the row's column); contract tests read it
CreatedTask.task_status  # RunningHub's answer to a create, checked by the client's tests
AccountStatus.remain_coins  # /uc/openapi/accountStatus, checked by the client's tests
AccountStatus.current_task_counts  # idem
schedule.checks_until  # the watchdog's cost model: bench/ and tests/unit/test_check_schedule.py
schedule.detection_delay  # idem
auth.verify_user_token  # a token the CLI issued, checked by the CLI's and auth's tests

# --- results that last: used by the pages branch's download button ------------------------------
downloads.download_href  # web/downloads.py: the page's download link (signed, short-lived)
GroupCommit.transactions  # tests/integration/test_group_commit.py: writes share transactions

# --- read by the logging module itself (the HOWTO's "Optimization" switches) --------------------
logging._srcfile  # logs.lean_records: no caller lookup per record
logging.logThreads  # idem: no thread name
logging.logProcesses  # idem: no process id
logging.logMultiprocessing  # idem: no process name
_Listener._monitor  # logs: overrides QueueListener's thread body (batched writes)
