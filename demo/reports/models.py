from django.db import models

from demo.newsletter.models import Issue


class Report(models.Model):
    issue = models.ForeignKey(Issue, on_delete=models.CASCADE, related_name="reports")
    created_at = models.DateTimeField(auto_now_add=True)
    task_result_id = models.CharField(max_length=40, blank=True,
                                      help_text="Django's TaskResult id (the pgqueue job id).")
    data = models.JSONField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"report {self.pk} on {self.issue}"
