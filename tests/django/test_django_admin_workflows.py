"""The admin and workflows: a job page links its parents and dependents (each with its state)
and its workflow; `?workflow_id=` lists one workflow's jobs in enqueue order with the jobs each
runs after, under the workflow's state; a blocked job can be cancelled like a queued one."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from shop.tasks import email_order, sum_weights, weigh

from pgqueue import chain, chord
from pgqueue.contrib.django.admin.jobs import AFTER_SHOWN, RELATIVES_SHOWN
from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.models import Job

JOBS = "/admin/pgqueue/job/"


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start:html.index("</ul>", start)]


def link(job_id: int) -> str:
    return f'href="{JOBS}{job_id}/change/">#{job_id}</a>'


def test_a_job_page_links_its_parents_dependents_and_workflow(client) -> None:
    handle = chain(chord([weigh.s("a"), weigh.s("bb")], sum_weights.s()), weigh.s()).defer()
    first, second, callback, last = handle.job_ids

    html = page(client, f"{JOBS}{callback}/change/")
    parents = section(html, "job-parents")
    assert link(first) in parents and link(second) in parents
    assert parents.count('class="pgq-badge pgq-queued"') == 2
    dependents = section(html, "job-dependents")
    assert link(last) in dependents and 'pgq-blocked">blocked' in dependents
    workflow = html[html.index('id="job-workflow"'):]
    assert f'?workflow_id={handle.workflow_id}">{handle.workflow_id}</a>' in workflow
    assert 'pgq-pending">pending' in workflow[:workflow.index("</div>")]
    assert 'id="job-cancel"' in html  # a blocked job can be cancelled

    root = page(client, f"{JOBS}{first}/change/")
    assert 'id="job-parents"' not in root
    assert link(callback) in section(root, "job-dependents")

    app.run_worker(one_shot=True, concurrency=1)
    html = page(client, f"{JOBS}{callback}/change/")
    assert section(html, "job-parents").count('pgq-succeeded">succeeded') == 2
    assert 'pgq-succeeded">succeeded' in html[html.index('id="job-workflow"'):]


def test_a_workflows_jobs_in_enqueue_order_under_its_state(client) -> None:
    email_order.defer("not in the workflow")
    handle = chord([weigh.s("a"), weigh.s("bb")], sum_weights.s(label="kg")).defer()
    first, second, callback = handle.job_ids

    html = page(client, f"{JOBS}?workflow_id={handle.workflow_id}")
    banner = html[html.index('id="workflow-summary"'):html.index("</div>",
                                                                html.index("workflow-summary"))]
    assert str(handle.workflow_id) in banner and 'pgq-pending">pending' in banner
    assert "3 jobs: 2 queued, 1 blocked." in banner
    listed = [int(n) for n in re.findall(r'<th class="field-id"><a href="[^"]+">(\d+)</a>', html)]
    assert listed == [first, second, callback]
    after = html[html.index('class="field-parents_display"', html.index(f">{callback}</a>")):]
    assert after.index(link(first)) < after.index(link(second)) < after.index("</td>")

    app.run_worker(one_shot=True, concurrency=1)
    html = page(client, f"{JOBS}?workflow_id={handle.workflow_id}")
    assert "3 jobs: 3 succeeded." in html and 'pgq-succeeded">succeeded</span></h2>' in html
    assert Job.objects.get(pk=callback).result == {"kg": 3}


def test_an_unknown_or_malformed_workflow_id_lists_nothing(client) -> None:
    email_order.defer("x")
    html = page(client, f"{JOBS}?workflow_id={uuid.uuid4()}")
    assert "No job has this workflow id" in html and "field-id" not in html
    html = page(client, f"{JOBS}?workflow_id=not-a-uuid")
    assert "field-id" not in html
    assert "workflow-summary" not in html


def test_a_chord_callbacks_many_parents_are_cut_short(client) -> None:
    parents = RELATIVES_SHOWN + 10
    handle = chord([weigh.s("x" * n) for n in range(parents)], sum_weights.s()).defer()
    html = page(client, f"{JOBS}{handle.job_ids[-1]}/change/")
    shown = section(html, "job-parents")
    assert shown.count("<li><a ") == RELATIVES_SHOWN
    assert f"and {parents} in all" in shown and "see the workflow" in shown
    listed = page(client, f"{JOBS}?workflow_id={handle.workflow_id}&q={handle.job_ids[-1]}")
    after = listed[listed.index('class="field-parents_display"',
                                listed.index(f">{handle.job_ids[-1]}</a>")):]
    after = after[:after.index("</td>")]
    assert after.count("<a ") == AFTER_SHOWN and f"and {parents - AFTER_SHOWN} more" in after


def test_a_pruned_parent_is_named_as_pruned(client) -> None:
    handle = chain(weigh.s("a"), weigh.s()).defer()
    app.run_worker(one_shot=True, concurrency=1)
    Job.objects.filter(pk=handle.job_ids[0]).delete()  # as retention's prune would
    parents = section(page(client, f"{JOBS}{handle.job_ids[1]}/change/"), "job-parents")
    assert link(handle.job_ids[0]) in parents and "pruned" in parents


def test_cancelling_a_blocked_job_cancels_its_dependents(client) -> None:
    handle = chain(weigh.s("a"), weigh.s(), weigh.s()).defer()
    _, blocked, after = handle.job_ids
    response = client.post(f"{JOBS}{blocked}/cancel/")
    assert response.status_code == 302
    assert Job.objects.get(pk=blocked).state == "cancelled"
    assert Job.objects.get(pk=after).state == "cancelled"

    other = chain(weigh.s("b"), weigh.s()).defer()
    client.post(JOBS, {"action": "cancel_selected", "_selected_action": [other.job_ids[1]]})
    assert Job.objects.get(pk=other.job_ids[1]).state == "cancelled"


def test_a_workflow_joins_the_orms_transaction(clean_jobs) -> None:
    """chain/group/chord `defer()` on the Django app runs in `atomic()` on Django's connection:
    the workflow commits or rolls back with the ORM's work, as `task.defer()` does."""
    from django.db import transaction
    from shop.models import Order

    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(reference="W-1")
        chord([weigh.s("a"), weigh.s("b")], sum_weights.s()).defer()
        raise RuntimeError("roll back")
    assert (Order.objects.count(), Job.objects.count()) == (0, 0)

    with transaction.atomic():
        Order.objects.create(reference="W-2")
        handle = chord([weigh.s("a"), weigh.s("b")], sum_weights.s()).defer()
    assert Job.objects.filter(workflow_id=handle.workflow_id).count() == 3
    with pytest.raises(Exception, match="unknown parent"), transaction.atomic():
        weigh.using(depends_on=[handle.job_ids[0], 999999]).defer("x")
    assert Job.objects.count() == 3
    Order.objects.all().delete()
