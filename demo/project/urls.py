from django.contrib import admin
from django.urls import path

from demo.legacy import views as legacy
from demo.newsletter import views as newsletter
from demo.reports import views as reports

urlpatterns = [
    path("", newsletter.index, name="index"),
    path("newsletter/issues/", newsletter.create_issue, name="create_issue"),
    path("newsletter/issues/<int:issue_id>/", newsletter.issue_progress, name="issue_progress"),
    path("reports/", reports.create_report, name="create_report"),
    path("reports/chord/", reports.create_report_by_chord, name="create_report_by_chord"),
    path("reports/<int:report_id>/", reports.report_detail, name="report_detail"),
    path("legacy/some-view/", legacy.some_view, name="some_view"),
    path("legacy/report-soon/", legacy.report_soon, name="report_soon"),
    path("admin/", admin.site.urls),
]
