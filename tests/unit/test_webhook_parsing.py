"""RunningHub's ``TASK_END`` webhook body, and the per-job HMAC token in our webhook URLs."""

from __future__ import annotations

import hashlib
import hmac
import json
import string

import pytest

from arcano_tools import constants as c
from arcano_tools.runninghub.client import parse_outputs_envelope
from arcano_tools.services.queue_manager import webhook_token, webhook_token_ok
from arcano_tools.services.webhooks import MalformedWebhook, WebhookEvent, parse_webhook

TASK_ID = "1904163390028185602"
FILE_URL = "https://rh-images.xiaoyaoyou.com/f2/output/ComfyUI_00001_.png"
EVENT_DATA = {
    "code": 0,
    "msg": "success",
    "data": [{"fileUrl": FILE_URL, "fileType": "png", "taskCostTime": 0, "nodeId": "9"}],
}
SECRET = b"webhook:svc_" + b"k" * 40
JOB_ID = "0b6d3c1e-8f2a-4c5b-9d7e-1a2b3c4d5e6f"


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


# --- parse_webhook ----------------------------------------------------------------------------


def test_runninghubs_documented_body_with_event_data_as_a_json_string_parses() -> None:
    raw = body(event="TASK_END", taskId=TASK_ID, eventData=json.dumps(EVENT_DATA))
    event = parse_webhook(raw)
    assert event == WebhookEvent(event="TASK_END", task_id=TASK_ID, envelope=EVENT_DATA)


def test_the_documented_body_as_runninghub_writes_it_parses() -> None:
    raw = (
        b'{"event":"TASK_END","taskId":"1904163390028185602","eventData":"{\\"code\\":0,'
        b'\\"msg\\":\\"success\\",\\"data\\":[{\\"fileUrl\\":\\"https://rh.example/x.png\\",'
        b'\\"fileType\\":\\"png\\",\\"taskCostTime\\":0,\\"nodeId\\":\\"9\\"}]}"}'
    )
    event = parse_webhook(raw)
    assert event.event == "TASK_END"
    assert event.task_id == "1904163390028185602"
    assert event.envelope["code"] == 0
    assert event.envelope["data"][0]["fileUrl"] == "https://rh.example/x.png"


def test_the_parsed_event_data_is_an_outputs_envelope_with_the_result_file() -> None:
    event = parse_webhook(body(event="TASK_END", taskId=TASK_ID, eventData=json.dumps(EVENT_DATA)))
    outputs = parse_outputs_envelope(event.envelope)
    assert outputs.state == "success"
    assert outputs.output_url == FILE_URL
    assert outputs.files[0].node_id == "9"


def test_event_data_sent_as_an_object_parses_the_same() -> None:
    event = parse_webhook(body(event="TASK_END", taskId=TASK_ID, eventData=EVENT_DATA))
    assert event.envelope == EVENT_DATA
    assert event.task_id == TASK_ID


def test_an_integer_task_id_keeps_every_digit_as_a_string() -> None:
    raw = b'{"event":"TASK_END","taskId":1904163390028185602,"eventData":{"code":804}}'
    event = parse_webhook(raw)
    assert event.task_id == "1904163390028185602"


def test_spaces_around_the_task_id_are_dropped() -> None:
    assert parse_webhook(body(taskId=f"  {TASK_ID}\n", eventData={"code": 0})).task_id == TASK_ID


def test_a_missing_event_name_is_empty_not_an_error() -> None:
    event = parse_webhook(body(taskId=TASK_ID, eventData={"code": 805, "msg": "failed"}))
    assert event.event == ""
    assert event.envelope == {"code": 805, "msg": "failed"}


def test_the_body_may_be_utf8_with_non_ascii_text() -> None:
    data = {"code": 805, "msg": "falhou: memória insuficiente"}
    raw = json.dumps({"taskId": TASK_ID, "eventData": data}, ensure_ascii=False).encode()
    assert parse_webhook(raw).envelope["msg"] == "falhou: memória insuficiente"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "not JSON"),
        (b"event=TASK_END&taskId=1", "not JSON"),
        (b'{"taskId": "1", ', "not JSON"),
        (b"\xff\xfe\xfa", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'[{"taskId": "1", "eventData": {"code": 0}}]', "not a JSON object"),
        (b'"TASK_END"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b'{"event": "TASK_END", "eventData": {"code": 0}}', "taskId missing"),
        (b'{"taskId": "", "eventData": {"code": 0}}', "taskId missing"),
        (b'{"taskId": "   ", "eventData": {"code": 0}}', "taskId missing"),
        (b'{"taskId": null, "eventData": {"code": 0}}', "taskId missing"),
        (b'{"taskId": 1.5, "eventData": {"code": 0}}', "taskId missing"),
        (b'{"taskId": ["1"], "eventData": {"code": 0}}', "taskId missing"),
        (b'{"taskId": -318, "eventData": {"code": 0}}', "not a RunningHub task id"),
        (b'{"taskId": "' + b"9" * 65 + b'", "eventData": {"code": 0}}', "not a RunningHub task id"),
        (b'{"taskId": "' + b"9" * 200_000 + b'", "eventData": {}}', "not a RunningHub task id"),
        (b'{"taskId": "1; DROP TABLE", "eventData": {"code": 0}}', "not a RunningHub task id"),
        (b'{"taskId": "\\u00e7", "eventData": {"code": 0}}', "not a RunningHub task id"),
        (b'{"taskId": "1", "eventData": "{code: 0"}', "eventData is not JSON"),
        (b'{"taskId": "1", "eventData": ""}', "eventData is not JSON"),
        (b'{"taskId": "1"}', "eventData missing"),
        (b'{"taskId": "1", "eventData": null}', "eventData missing"),
        (b'{"taskId": "1", "eventData": "[1, 2]"}', "eventData missing"),
        (b'{"taskId": "1", "eventData": [{"code": 0}]}', "eventData missing"),
        (b'{"taskId": "1", "eventData": 0}', "eventData missing"),
    ],
    ids=[
        "empty",
        "form-encoded",
        "truncated",
        "not-utf8",
        "empty-list",
        "list",
        "string",
        "null",
        "no-task-id",
        "empty-task-id",
        "blank-task-id",
        "null-task-id",
        "float-task-id",
        "list-task-id",
        "task-id-negative-number",
        "task-id-65-chars",
        "task-id-200k-chars",
        "task-id-with-spaces",
        "task-id-non-ascii",
        "event-data-not-json",
        "event-data-empty-string",
        "no-event-data",
        "null-event-data",
        "event-data-json-list",
        "event-data-list",
        "event-data-number",
    ],
)
def test_a_malformed_body_raises_malformed_webhook_saying_why(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedWebhook, match=why):
        parse_webhook(raw)


def test_a_task_id_as_wide_as_the_column_is_accepted() -> None:
    raw = b'{"taskId": "' + b"9" * 64 + b'", "eventData": {"code": 0}}'
    assert parse_webhook(raw).task_id == "9" * 64


def test_malformed_webhook_is_a_value_error() -> None:
    assert issubclass(MalformedWebhook, ValueError)


# --- webhook tokens ---------------------------------------------------------------------------


def test_a_webhook_token_is_32_lowercase_hex_characters() -> None:
    token = webhook_token(SECRET, "upscaler_jobs", JOB_ID)
    assert len(token) == c.WEBHOOK_TOKEN_HEX_CHARS == 32
    assert set(token) <= set(string.hexdigits.lower())


def test_a_webhook_token_is_stable_for_the_same_job() -> None:
    first = webhook_token(SECRET, "upscaler_jobs", JOB_ID)
    assert webhook_token(SECRET, "upscaler_jobs", JOB_ID) == first
    assert webhook_token(bytes(SECRET), "upscaler_jobs", str(JOB_ID)) == first


def test_a_webhook_token_differs_per_job() -> None:
    tokens = {webhook_token(SECRET, "upscaler_jobs", f"job-{i}") for i in range(50)}
    assert len(tokens) == 50


def test_a_webhook_token_differs_per_table_for_the_same_job_id() -> None:
    tokens = {
        webhook_token(SECRET, table, JOB_ID)
        for table in ("upscaler_jobs", "pose_changer_jobs", "veste_ai_jobs", "video_upscaler_jobs")
    }
    assert len(tokens) == 4


def test_a_webhook_token_differs_per_secret() -> None:
    assert webhook_token(SECRET, "upscaler_jobs", JOB_ID) != webhook_token(
        SECRET + b"x", "upscaler_jobs", JOB_ID
    )


def test_the_right_token_is_accepted() -> None:
    token = webhook_token(SECRET, "veste_ai_jobs", JOB_ID)
    assert webhook_token_ok(SECRET, "veste_ai_jobs", JOB_ID, token) is True


@pytest.mark.parametrize(
    "bad",
    [None, "", "0" * 32, "not-a-token"],
    ids=["none", "empty", "zeros", "word"],
)
def test_a_missing_or_wrong_token_is_refused(bad: str | None) -> None:
    assert webhook_token_ok(SECRET, "veste_ai_jobs", JOB_ID, bad) is False


def test_a_truncated_extended_or_uppercased_token_is_refused() -> None:
    token = webhook_token(SECRET, "veste_ai_jobs", JOB_ID)
    for bad in (token[:-1], token + "0", token.upper(), f" {token}"):
        assert webhook_token_ok(SECRET, "veste_ai_jobs", JOB_ID, bad) is False, bad


def test_another_jobs_or_tables_token_is_refused() -> None:
    other_job = webhook_token(SECRET, "veste_ai_jobs", "another-job")
    other_table = webhook_token(SECRET, "upscaler_jobs", JOB_ID)
    assert webhook_token_ok(SECRET, "veste_ai_jobs", JOB_ID, other_job) is False
    assert webhook_token_ok(SECRET, "veste_ai_jobs", JOB_ID, other_table) is False


def test_a_token_made_with_another_secret_is_refused() -> None:
    forged = webhook_token(b"webhook:guessed", "veste_ai_jobs", JOB_ID)
    assert webhook_token_ok(SECRET, "veste_ai_jobs", JOB_ID, forged) is False


def test_a_token_with_non_ascii_characters_is_refused_not_an_error() -> None:
    assert webhook_token_ok(SECRET, "veste_ai_jobs", JOB_ID, "é" * 32) is False


def test_tokens_are_the_hmac_they_always_were() -> None:
    """Tokens in URLs already handed to RunningHub must still verify after a deploy: the
    token is HMAC-SHA256 of ``table:job[:claim]``, hex, cut to WEBHOOK_TOKEN_HEX_CHARS —
    computed here independently of how the code computes it."""
    claim = "c" * 32

    def mac(message: str) -> str:
        full = hmac.new(SECRET, message.encode(), hashlib.sha256).hexdigest()
        return full[: c.WEBHOOK_TOKEN_HEX_CHARS]

    assert webhook_token(SECRET, "upscaler_jobs", JOB_ID) == mac(f"upscaler_jobs:{JOB_ID}")
    assert webhook_token(SECRET, "upscaler_jobs", JOB_ID, claim) == (
        f"{claim}." + mac(f"upscaler_jobs:{JOB_ID}:{claim}")
    )
