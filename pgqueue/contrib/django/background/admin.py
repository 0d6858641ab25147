"""Admin pages for django-background-tasks' Task and CompletedTask (views over pgqueue jobs),
with the list columns that library's admin had. Read-only: a task is changed by code or by the
pgqueue job admin's actions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from pgqueue.contrib.django.background.models import CompletedTask, Task
from pgqueue.contrib.django.paginator import EstimatedCountPaginator


class ReadOnlyTaskAdmin(admin.ModelAdmin):
    list_display = ("id", "task_name", "verbose_name", "queue", "state", "priority", "run_at",
                    "attempts", "has_error", "locked_by")
    search_fields = ("task_name", "verbose_name")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    sortable_by = ("id",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Task)
class TaskAdmin(ReadOnlyTaskAdmin):
    pass


@admin.register(CompletedTask)
class CompletedTaskAdmin(ReadOnlyTaskAdmin):
    list_display = ("id", "task_name", "verbose_name", "queue", "state", "run_at",
                    "failed_at", "attempts", "has_error")
