from django.db import models


class Order(models.Model):
    reference = models.CharField(max_length=50, unique=True)
    emailed = models.BooleanField(default=False)
