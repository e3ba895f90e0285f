"""The metrics' labelled children are kept: one per label set, and the counts are the same."""

from __future__ import annotations

from arcano_tools.metrics import Metrics


def test_counts_by_label_reach_the_text_and_each_label_set_has_one_child() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.count(metrics.jobs_finished, "upscaler_jobs", "completed", "webhook")
    metrics.count(metrics.jobs_finished, "upscaler_jobs", "failed", "webhook")
    metrics.count(metrics.webhooks, "accepted")

    text = metrics.render().decode()

    assert (
        'arcano_jobs_finished_total{finished_by="webhook",status="completed",'
        'table="upscaler_jobs"} 3.0' in text
    )
    assert (
        'arcano_jobs_finished_total{finished_by="webhook",status="failed",'
        'table="upscaler_jobs"} 1.0' in text
    )
    assert 'arcano_webhooks_total{outcome="accepted"} 1.0' in text
    assert len(metrics._children) == 3
