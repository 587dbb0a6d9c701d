"""Portal pages of the build state machine."""

from django.urls import path

from dcportal.views import app_index

urlpatterns = [
    path(
        "builds/",
        app_index,
        {"app_label": "deploy", "title": "Builds", "description": "Servers in build mode."},
        name="builds",
    ),
]
