from __future__ import annotations

import json

from pgqueue.worker.notifications import concerns_queues


def test_worker_on_all_queues_wakes_for_everything() -> None:
    assert concerns_queues(json.dumps({"queues": ["x"]}), None)


def test_empty_or_unreadable_payload_wakes_everyone() -> None:
    assert concerns_queues("", ("emails",))
    assert concerns_queues("not json", ("emails",))


def test_worker_wakes_only_for_its_queues() -> None:
    payload = json.dumps({"queues": ["emails", "q'uote;DROP"]})
    assert concerns_queues(payload, ("reports", "emails"))
    assert concerns_queues(payload, ("q'uote;DROP",))
    assert not concerns_queues(payload, ("reports",))


def test_any_payload_a_producer_can_send_wakes_rather_than_breaks() -> None:
    for payload in ("[" * 4000 + "]" * 4000, "[1, 2]", "5", '"emails"', '{"queues": 5}',
                    '{"queues": "emails"}', '{"queues": null}', "null"):
        assert concerns_queues(payload, ("emails",)), payload
