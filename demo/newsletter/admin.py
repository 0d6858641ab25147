from django.contrib import admin

from demo.newsletter.models import Delivery, Issue, Subscriber


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ("email", "joined_at")
    search_fields = ("email",)


@admin.register(Issue)
class IssueAdmin(admin.ModelAdmin):
    list_display = ("id", "subject", "created_at", "send_job_id")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("issue", "subscriber", "attempt", "delivered_at")
    list_select_related = ("issue", "subscriber")
