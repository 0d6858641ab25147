from django.db import models


class Subscriber(models.Model):
    email = models.EmailField(unique=True)
    joined_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email


class Issue(models.Model):
    subject = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    send_job_id = models.BigIntegerField(null=True, blank=True,
                                         help_text="The pgqueue job that fans the issue out.")

    def __str__(self) -> str:
        return self.subject


class Delivery(models.Model):
    """One issue mailed to one subscriber (written by the delivery job)."""

    issue = models.ForeignKey(Issue, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE)
    attempt = models.PositiveIntegerField(help_text="The job attempt that delivered it.")
    delivered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = (models.UniqueConstraint(fields=["issue", "subscriber"],
                                               name="one_delivery_per_subscriber"),)
