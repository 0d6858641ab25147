from django.contrib import admin

from demo.reports.models import Report


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("id", "issue", "created_at", "finished_at", "task_result_id")
